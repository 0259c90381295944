#!/usr/bin/env bash
# The main job end to end: build unionfsd and crun-lite, make a small
# two-layer image (scripts/mkimage.sh), import it into a layer store, run
# containers whose root is the image's layers merged by unionfsd, look at
# what their writes left in the upper dir, and commit one as a new image.
# Run as root on a fresh Debian: ./scripts/demo.sh
# Needs Go (1.26); installs fuse3 and busybox-static with apt-get if missing.
# Everything happens in a temp dir that is removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "demo: $*" >&2; exit 1; }
show() {
	printf '\n$ %s\n' "$*"
	eval "$@"
}

[ "$(id -u)" = 0 ] || die "run as root (mounts, namespaces, apt-get): sudo $0"
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || die "Go 1.26 is needed to build (it is at /usr/local/go on this project's machines)"
need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]} ..."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || die "/dev/fuse is missing and modprobe fuse failed"

echo "building bin/unionfsd and bin/crun-lite ..."
(cd "$repo" && go build -o bin/unionfsd ./cmd/unionfsd && go build -o bin/crun-lite ./cmd/crun-lite)
export PATH=$repo/bin:$PATH

demo=$(mktemp -d /tmp/crun-lite-demo.XXXXXX)
trap 'crun-lite --root "$demo/store" rm -f c1 >/dev/null 2>&1 || true; rm -rf "$demo"' EXIT
cd "$demo"
store="--root $demo/store"

echo
echo "== 1. an image: a docker-save tarball with two layers (the second deletes /etc/issue with a .wh. whiteout)"
show "'$repo/scripts/mkimage.sh' demo.tar demo:latest"
show "tar -tf demo.tar | sort"

echo
echo "== 2. import it: blobs verified by digest, each layer extracted once into the store"
show "crun-lite $store import demo.tar"
show "crun-lite $store images"
show "find store/layers -name '.wh.*' | sed 's|/[0-9a-f]*/diff/| ... |'"

echo
echo "== 3. run it: unionfsd merges the layers under a fresh upper dir, crun-lite pivot_roots into it"
show "crun-lite $store run --rm demo:latest"
show "crun-lite $store run --rm --hostname box demo:latest sh -c 'echo pid \$\$ on \$(hostname); ls /etc; cat /proc/self/mountinfo | head -1'"

echo
echo "== 4. a container that writes and deletes: the changes land in its upper dir only"
show "crun-lite $store run --name c1 demo:latest sh -c 'echo written in c1 >/root/note.txt; rm /bin/ls; echo done'"
show "crun-lite $store ps"
upper=$(ls -d "$demo"/store/containers/*/upper)
show "find '$upper' -mindepth 1 | sed 's|.*/upper/|upper/|' | sort"
show "ls -l store/layers/*/diff/bin/ls"

echo
echo "== 5. commit the container's upper as a new layer, and run the new image"
show "crun-lite $store commit c1 demo:v2"
show "crun-lite $store run --rm demo:v2 sh -c 'cat /root/note.txt; ls /bin/ls || echo \"ls is gone\"'"
show "crun-lite $store rm c1"
show "crun-lite $store images"

echo
echo "Done. For the union alone (copy-up, whiteouts, opaque dirs step by step) run scripts/demo-union.sh."
