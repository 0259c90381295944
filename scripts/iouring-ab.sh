#!/bin/bash
# iouring-ab.sh UNIONFSD [ROUNDS]: A/B of FUSE over io_uring, interleaved
# (off, on, off, on, ...), with the bench's cached data set. Per sample:
# wall seconds, daemon CPU seconds (utime+stime from /proc/PID/stat) and
# daemon context switches (perf stat -e context-switches -p PID).
#   untar:  tar -xf untar.tar (20k small files) into a fresh upper; uppers
#           are never deleted between samples (ext4 delays inode reuse).
#   find:   find+stat (-printf '%s %y') over the 3-layer tree, --timeout 0
#           so every entry is looked up again, second run on a warm mount.
#   rread:  fio 4k random read, 64 MiB of I/O, of a 256 MiB upper file,
#           --passthrough=false so every read is a FUSE request.
# Sets the fuse module's enable_uring to Y for the run and restores it.
# Run through /work/wt/fuse-slot.
set -eu
BIN=$(realpath "$1")
ROUNDS=${2:-5}
DATA=/var/tmp/unionfsd-bench/full
PARAM=/sys/module/fuse/parameters/enable_uring
W=$(mktemp -d /var/tmp/iouring-ab.XXXX)
OLD=$(cat $PARAM)
trap 'echo $OLD > $PARAM' EXIT
echo Y > $PARAM

PID=
mountu() { # mode dir extra-flags...: mounts the 3 layers with a fresh upper at dir/mnt
	local mode=$1 d=$2; shift 2
	mkdir -p $d/upper $d/work $d/mnt
	$BIN -f --io-uring=$mode "$@" -o lowerdir=$DATA/layers/l1:$DATA/layers/l2:$DATA/layers/l3,upperdir=$d/upper,workdir=$d/work $d/mnt 2>>$W/daemon.log &
	PID=$!
	for i in $(seq 100); do mountpoint -q $d/mnt && return 0; sleep 0.05; done
	echo "mount $d failed" >&2; exit 1
}
umountu() { umount $1/mnt; wait $PID || true; }
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }

# measure NAME MODE CMD...: one sample of CMD against the current daemon.
measure() {
	local name=$1 mode=$2; shift 2
	local c0 c1 t0 t1 cs
	perf stat -e context-switches -x, -o $W/perf.$$ -p $PID & local perfpid=$!
	sleep 0.2
	c0=$(cpu); t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N); c1=$(cpu)
	kill -INT $perfpid; wait $perfpid || true
	cs=$(grep context-switches $W/perf.$$ | cut -d, -f1)
	awk -v n=$name -v m=$mode -v t0=$t0 -v t1=$t1 -v c0=$c0 -v c1=$c1 -v cs=$cs -v hz=$(getconf CLK_TCK) \
		'BEGIN { printf "%-6s %-3s wall %7.3f s  cpu %7.3f s  cs %8d\n", n, m, t1-t0, (c1-c0)/hz, cs }' | tee -a $W/results
}

uptime
for r in $(seq $ROUNDS); do
	for mode in off on; do
		d=$W/untar.$mode.$r; mountu $mode $d
		mkdir $d/mnt/untar
		measure untar $mode tar -xf $DATA/untar.tar -C $d/mnt/untar
		umountu $d

		d=$W/find.$mode.$r; mountu $mode $d --timeout 0
		find $d/mnt/tree -printf '%s %y\n' >/dev/null
		measure find $mode find $d/mnt/tree -printf '%s %y\n'
		umountu $d

		d=$W/rread.$mode.$r; mountu $mode $d --passthrough=false
		head -c 256M /dev/urandom > $d/mnt/rread.bin
		measure rread $mode fio --name=r --filename=$d/mnt/rread.bin --rw=randread --bs=4k --size=256M --io_size=64M --ioengine=psync --invalidate=1 --randrepeat=1 --norandommap
		umountu $d
		rm -f $d/upper/rread.bin
	done
done
uptime
echo "medians:"
for n in untar find rread; do for m in off on; do
	for f in 4 7 10; do grep "^$n *$m " $W/results | awk -v f=$f '{print $f}' | sort -n | awk '{a[NR]=$1} END {printf "%s ", a[int((NR+1)/2)]}'; done
	echo " <- $n $m (wall cpu cs)"
done; done
echo "data: $W"
