#!/usr/bin/env bash
# Writes a small two-layer container image as a docker-save tarball, with
# nothing but the shell, tar and sha256sum, so the format stays visible:
#   layer 1: /bin/busybox (Debian's busybox-static) and applet links, /etc
#   layer 2: /etc/motd, and a whiteout (.wh.) deleting layer 1's /etc/issue
# Usage: scripts/mkimage.sh OUT.tar [NAME:TAG]   (default demo:latest)
set -euo pipefail

out=${1:?usage: mkimage.sh OUT.tar [NAME:TAG]}
ref=${2:-demo:latest}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkimage: $busybox missing: apt-get install busybox-static" >&2; exit 1; }
out=$(realpath -m "$out")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Layer 1: a busybox root filesystem.
l1=$work/rootfs1
mkdir -p "$l1"/{bin,etc,tmp,root,proc,sys,dev}
chmod 1777 "$l1/tmp"
cp "$busybox" "$l1/bin/busybox"
for applet in sh ls cat echo mkdir rm mv cp touch id hostname ps sleep uname env grep wc head true false mount df find stat date; do
	ln -s busybox "$l1/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$l1/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$l1/etc/group"
echo "busybox base layer" >"$l1/etc/issue"

# Layer 2: a change set on top: one new file, one deletion as an OCI whiteout.
l2=$work/rootfs2
mkdir -p "$l2/etc"
echo "hello from the second layer of $ref" >"$l2/etc/motd"
: >"$l2/etc/.wh.issue"

# Layers are plain tars with fixed owner and times, so the digests repeat.
mklayer() { tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf "$2" .; }
mkdir -p "$work/image"
mklayer "$l1" "$work/layer1.tar"
mklayer "$l2" "$work/layer2.tar"
d1=$(sha256sum "$work/layer1.tar" | cut -d' ' -f1)
d2=$(sha256sum "$work/layer2.tar" | cut -d' ' -f1)
mkdir -p "$work/image/$d1" "$work/image/$d2"
mv "$work/layer1.tar" "$work/image/$d1/layer.tar"
mv "$work/layer2.tar" "$work/image/$d2/layer.tar"

# The image config: runtime defaults and the diff_ids (digests of the
# uncompressed layer tars, bottom first). Its own digest is the image ID.
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Env":["PATH=/bin","GREETING=hello"],"Cmd":["/bin/sh","-c","cat /etc/motd"],"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$d1","sha256:$d2"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"mkimage.sh: busybox base"},
            {"created":"1970-01-01T00:00:00Z","created_by":"mkimage.sh: add /etc/motd, delete /etc/issue"}]}
JSON
cid=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/image/$cid.json"
cat >"$work/image/manifest.json" <<JSON
[{"Config":"$cid.json","RepoTags":["$ref"],"Layers":["$d1/layer.tar","$d2/layer.tar"]}]
JSON
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/image" -cf "$out" .
echo "$out: $ref, image ID sha256:${cid:0:12}, 2 layers"
