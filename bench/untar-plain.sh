#!/bin/bash
# untar-plain.sh: the untar row by hand, to cross-check the harness (docs/bench.md, "Fresh inodes").
#
#   FRESH=1 bench/untar-plain.sh ROUNDS TAR BASE METHOD...
#
# METHOD: overlay, fuse-overlayfs or unionfsd (UNIONFSD=binary, UOPTS="-o x=y" for a variant). For each
# round and method (in the given order) it mounts the 3 layers of the full data set (LAYERS=dir holding
# l1 l2 l3; default /var/tmp/unionfsd-bench/full/layers) with a new upper under BASE/rR-METHOD, reads TAR
# into the page cache, syncs, and times "tar -xf TAR" into the mount, printing wall time and the FUSE
# daemon's user+sys CPU over it (/proc/PID/stat). Nothing is deleted during the run: uppers stay in BASE
# (delete it yourself later). With FRESH=1 each upper is on a new loop-mounted ext4 without a journal
# (as the harness does), unmounted and deleted after its sample. Run as root, through /work/wt/fuse-slot.
set -e
rounds=$1 tar=$2 base=$3; shift 3
L=${LAYERS:-/var/tmp/unionfsd-bench/full/layers}
lower=$L/l3:$L/l2:$L/l1
cpu() { awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print (f[12] + f[13]) / 100 }' /proc/$1/stat; }
for r in $(seq "$rounds"); do
  for m in "$@"; do
    d=$base/r$r-$m; mkdir -p $d/mnt
    up=$d
    if [ -n "$FRESH" ]; then
      truncate -s 1G $d.img
      mkfs.ext4 -q -F -O ^has_journal -N 100000 -E lazy_itable_init=0,nodiscard $d.img
      mkdir -p $d/fs; mount -o loop $d.img $d/fs; up=$d/fs
    fi
    mkdir -p $up/upper $up/work; cat "$tar" >/dev/null
    pid=
    case $m in
      overlay) mount -t overlay overlay -o lowerdir=$lower,upperdir=$up/upper,workdir=$up/work $d/mnt ;;
      fuse-overlayfs) fuse-overlayfs -f -o lowerdir=$lower,upperdir=$up/upper,workdir=$up/work $d/mnt & pid=$! ;;
      unionfsd*) ${UNIONFSD:-unionfsd} -f $UOPTS -o lowerdir=$lower,upperdir=$up/upper,workdir=$up/work none $d/mnt & pid=$! ;;
      *) echo "unknown method $m" >&2; exit 2 ;;
    esac
    for i in $(seq 500); do mountpoint -q $d/mnt && break; sleep 0.02; done
    mkdir $d/mnt/untar; sync
    c0=0; [ -n "$pid" ] && c0=$(cpu $pid)
    t0=$(date +%s.%N)
    tar -xf "$tar" -C $d/mnt/untar
    t1=$(date +%s.%N)
    c1=0; [ -n "$pid" ] && c1=$(cpu $pid)
    umount $d/mnt; [ -n "$pid" ] && wait $pid
    if [ -n "$FRESH" ]; then umount $d/fs; rm -f $d.img; fi
    printf "r%d %-16s wall %.2f s  daemon cpu %.2f s\n" $r $m $(echo "$t1 - $t0" | bc) $(echo "$c1 - $c0" | bc)
  done
done
