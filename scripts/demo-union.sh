#!/usr/bin/env bash
# Demo of unionfsd: mount two read-only layers under a writable one and show
# what copy-up, deletion and directory replacement leave in the upper layer.
# Run as root from anywhere in the repo, on a fresh Debian:
#   sudo scripts/demo-union.sh
# It needs Go (to build bin/unionfsd) and installs fuse3 with apt-get if
# missing. Everything happens in a temp dir that is removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/bin/unionfsd

die() { echo "demo-union: $*" >&2; exit 1; }

# show prints a command the way a shell prompt would, then runs it.
show() {
	printf '\n$ %s\n' "$*"
	eval "$@"
}

[ "$(id -u)" = 0 ] || die "run as root (FUSE mounts and apt-get): sudo $0"
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || die "/dev/fuse missing and modprobe fuse failed"
if ! command -v fusermount3 >/dev/null || [ ! -e /sbin/mount.fuse3 ]; then
	echo "installing fuse3 ..."
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
fi
command -v go >/dev/null || die "Go is needed to build unionfsd (https://go.dev/dl/)"

echo "building $bin ..."
(cd "$repo" && go build -o "$bin" ./cmd/unionfsd)

demo=$(mktemp -d /tmp/unionfsd-demo.XXXXXX)
cleanup() {
	if mountpoint -q "$demo/merged" 2>/dev/null; then
		umount "$demo/merged" 2>/dev/null || umount -l "$demo/merged"
	fi
	rm -rf "$demo"
}
trap cleanup EXIT
cd "$demo"

# Two read-only layers (lower2 on top of lower1) and an empty upper.
mkdir -p lower1/config lower2 upper merged
echo "hello from lower1" >lower1/hello.txt
echo "notes from lower1" >lower1/notes.txt
echo "an old file" >lower1/old.txt
echo "a=1" >lower1/config/a.conf
echo "b=2" >lower1/config/b.conf
echo "notes from lower2 (hides lower1's)" >lower2/notes.txt

echo
echo "== layers in $demo"
show 'find lower1 lower2 upper -type f | sort'

echo
echo "== mount: the first branch is the writable upper, the rest are read-only, top first"
show "'$bin' upper:lower2:lower1 merged"
show 'findmnt -o TARGET,SOURCE,FSTYPE merged'
show 'ls merged'
show 'cat merged/notes.txt'

echo
echo "== read a lower file: served from lower1, nothing copied"
show 'cat merged/hello.txt'
show 'ls -A upper'

echo
echo "== write it: copy-up puts the whole file in the upper; lower1 stays unchanged"
show 'echo "a line added through the mount" >>merged/hello.txt'
show 'cat merged/hello.txt'
show 'cat upper/hello.txt'
show 'cat lower1/hello.txt'

echo
echo "== delete a lower file: the upper gets a whiteout .wh.old.txt"
show 'rm merged/old.txt'
show 'ls merged'
show 'ls -A upper'
show 'ls lower1'

echo
echo "== replace a dir: the new upper dir is marked opaque (.wh..wh..opq), lower entries are hidden"
show 'rm -r merged/config'
show 'mkdir merged/config'
show 'echo "c=3" >merged/config/c.conf'
show 'ls -A merged/config'
show 'ls -A upper/config'
show 'ls lower1/config'

echo
echo "(upper/.wh..wh.unionfsd.work is the copy-up scratch dir; the mount hides it)"

echo
echo "== unmount: the daemon exits by itself"
show 'umount merged'
show 'sleep 0.2; pgrep -af "$bin upper:lower2:lower1" || echo "no unionfsd left"'
