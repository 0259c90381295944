#!/usr/bin/env bash
# Runs the whole test suite as root on a fresh Debian machine: installs what
# the tests need (FUSE, kernel-overlay tools, image tools), then go test.
# Usage (as root): ./scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "scripts/test.sh: run as root (the tests mount FUSE and overlay filesystems): sudo $0" >&2
	exit 1
fi

need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v setfattr >/dev/null || need+=(attr)
command -v skopeo >/dev/null || need+=(skopeo)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v runc >/dev/null || need+=(runc)
command -v newuidmap >/dev/null || need+=(uidmap)
command -v umoci >/dev/null || need+=(umoci)
# Peers for the benchmark harness's smoke test (bench/).
command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
command -v unionfs >/dev/null || need+=(unionfs-fuse)
command -v fio >/dev/null || need+=(fio)
command -v podman >/dev/null || need+=(podman)
# A local registry for the pull/push/login tests (layers/registry, cmd/crun-lite).
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
# Fault injection (tests/faults): loop ext4 uppers, a dm error target.
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v dmsetup >/dev/null || need+=(dmsetup)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
fi
modprobe fuse 2>/dev/null || true
modprobe overlay 2>/dev/null || true
modprobe dm_mod 2>/dev/null || true
export PATH=$PATH:/usr/local/go/bin

go vet ./...
# Each fuzz target runs a fixed number of inputs beyond its seeds (the tests
# below run the seeds); first, so that go test's summary ends the output. A
# count, not a duration: with a duration, Go's fuzz coordinator can report
# its own deadline ("context deadline exceeded") as a failure when the time
# runs out while it minimizes a new input. A crasher it finds is written to
# the package's testdata/fuzz/ and fails the run: commit it there as a
# regression seed.
fuzztime=${FUZZTIME:-20000x}
grep -l '^func Fuzz' $(git ls-files '*_test.go') | while read -r file; do
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $target ($(dirname "$file"), $fuzztime)"
		if ! out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "./$(dirname "$file")" 2>&1); then
			echo "$out"
			exit 1
		fi
	done
done

# One package at a time: several packages mount filesystems, start daemons
# and change /dev/fuse's mode for rootless tests; run side by side they
# would disturb each other on a 2-core machine.
go test -race -count=1 -p 1 -timeout 20m "$@" ./...
