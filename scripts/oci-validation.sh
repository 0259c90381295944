#!/bin/bash
# oci-validation.sh RUNTIME_TOOLS_DIR RUNTIME [FILE...]
#
# Builds the OCI runtime-tools validation programs in RUNTIME_TOOLS_DIR (a
# checkout of github.com/opencontainers/runtime-tools; its vendor/ makes the
# build offline) and runs each validation file (all when none is named)
# against RUNTIME, which must be an absolute path taking runc's command line
# (e.g. a wrapper that adds --root). Needs root. Prints one line per file
# and the totals: files whose every planned assert is ok, failing asserts.
# After each file it deletes RUNTIME's remaining containers, unmounts and
# removes the file's bundles and the cgroups the suite names (cgrouptest,
# testdir/...). See docs/validation.md.
set -u
src=${1:?usage: oci-validation.sh RUNTIME_TOOLS_DIR RUNTIME [FILE...]}
rt=${2:?usage: oci-validation.sh RUNTIME_TOOLS_DIR RUNTIME [FILE...]}
shift 2
case $rt in /*) ;; *) echo "oci-validation.sh: RUNTIME must be an absolute path: $rt" >&2; exit 2 ;; esac
cd "$src" || exit 2
GOFLAGS=-mod=vendor make runtimetest validation-executables >/dev/null || { echo "oci-validation.sh: build failed in $src" >&2; exit 1; }
files="$*"
[ -z "$files" ] && files=$(ls validation | grep -v '^util$')
out=$(mktemp -d /tmp/oci-validation.XXXXXX)
mkdir -p "$out/tmp"
nfiles=0 allok=0 fails=0
for t in $files; do
	TMPDIR=$out/tmp RUNTIME=$rt timeout 120 "./validation/$t/$t.t" >"$out/$t.tap" 2>&1
	rc=$?
	for id in $("$rt" list -q 2>/dev/null); do "$rt" delete --force "$id" >/dev/null 2>&1; done
	grep -o " $out/tmp/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "${out:?}/tmp/"*
	for c in /sys/fs/cgroup/*/cgrouptest /sys/fs/cgroup/*/testdir/cgrouptest/container /sys/fs/cgroup/*/testdir/cgrouptest /sys/fs/cgroup/*/testdir /sys/fs/cgroup/cgrouptest; do
		[ -d "$c" ] && rmdir "$c" 2>/dev/null
	done
	ok=$(grep -c '^ok ' "$out/$t.tap") nok=$(grep -c '^not ok ' "$out/$t.tap")
	plan=$(grep -m1 -o '^1\.\.[0-9]*' "$out/$t.tap" | cut -d. -f3)
	good=no
	[ "$nok" = 0 ] && [ -n "$plan" ] && [ "$plan" -gt 0 ] && [ "$ok" = "$plan" ] && good=yes
	nfiles=$((nfiles + 1)) fails=$((fails + nok))
	[ $good = yes ] && allok=$((allok + 1))
	printf '%-32s ok=%-4s not_ok=%-3s plan=%-4s exit=%-3s all_ok=%s\n' "$t" "$ok" "$nok" "${plan:--}" "$rc" "$good"
done
echo "files=$nfiles all_ok=$allok failing_asserts=$fails (TAP output in $out)"
