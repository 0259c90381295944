package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Scale sizes the data set. Every workload reads its sizes from here, so a
// tiny scale exercises exactly the same code as the full one.
type Scale struct {
	Name string
	// The small-file tree: TreeDirs dirs; in each, layer 1 holds names
	// [0,120%), layer 2 [100%,160%) and layer 3 [150%,200%) of
	// TreeFilesPerDir/2, so some names are shadowed and the merged dir has
	// TreeFilesPerDir files.
	TreeDirs        int
	TreeFilesPerDir int
	// BigDir entries merged from two layers (10% of them in both).
	BigDirEntries int
	SeqBytes      int64 // the sequential-read file in the bottom layer
	// Copy-up files in the bottom layer, smallest first; the first one is
	// copied up CopyUpSmallCount times (many small files).
	CopyUpBytes      []int64
	CopyUpSmallCount int
	AppendBytes      int64 // the file appended to after its copy-up
	AppendWrites     int   // 4 KiB appends, each its own open/write/close
	FioFileBytes     int64 // fio's files (lower and upper)
	FioIOBytes       int64 // bytes each fio job moves
	TarFiles         int
	RmFiles          int
	// Image import (issue 4): one layer of ImportFiles small files, one
	// holding a single file of ImportBigBytes.
	ImportFiles    int
	ImportBigBytes int64
	// chown -R (issue 6): a lower tree of ChownFiles files holding
	// ChownBytes in all.
	ChownFiles int
	ChownBytes int64
	// ContainerStarts is how many containers one container-start sample
	// starts (p50 and p95 over them).
	ContainerStarts int
	// FindAgainAfter are the pauses between a first find+stat and the timed
	// second one (find-again-*): longer than the kernel cache timeouts a
	// daemon may use, so that a short cache cannot hide the cost of
	// metadata that has expired.
	FindAgainAfter []time.Duration
}

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

var scales = map[string]Scale{
	"tiny": {
		Name: "tiny", TreeDirs: 8, TreeFilesPerDir: 20, BigDirEntries: 200,
		SeqBytes: 4 * mib, CopyUpBytes: []int64{4 * kib, 64 * kib, 1 * mib, 4 * mib}, CopyUpSmallCount: 10,
		AppendBytes: 64 * kib, AppendWrites: 20, FioFileBytes: 4 * mib, FioIOBytes: 1 * mib,
		TarFiles: 200, RmFiles: 200,
		ImportFiles: 200, ImportBigBytes: 8 * mib, ChownFiles: 200, ChownBytes: 8 * mib, ContainerStarts: 3,
		FindAgainAfter: []time.Duration{100 * time.Millisecond},
	},
	"small": {
		Name: "small", TreeDirs: 50, TreeFilesPerDir: 200, BigDirEntries: 10000,
		SeqBytes: 256 * mib, CopyUpBytes: []int64{4 * kib, 1 * mib, 100 * mib, 256 * mib}, CopyUpSmallCount: 100,
		AppendBytes: 1 * mib, AppendWrites: 500, FioFileBytes: 64 * mib, FioIOBytes: 16 * mib,
		TarFiles: 5000, RmFiles: 2500,
		ImportFiles: 5000, ImportBigBytes: 256 * mib, ChownFiles: 5000, ChownBytes: 256 * mib, ContainerStarts: 10,
		FindAgainAfter: []time.Duration{2 * time.Second, 10 * time.Second},
	},
	"full": {
		Name: "full", TreeDirs: 250, TreeFilesPerDir: 200, BigDirEntries: 10000,
		SeqBytes: 1 * gib, CopyUpBytes: []int64{4 * kib, 1 * mib, 100 * mib, 1 * gib}, CopyUpSmallCount: 200,
		AppendBytes: 1 * mib, AppendWrites: 1000, FioFileBytes: 256 * mib, FioIOBytes: 32 * mib,
		TarFiles: 20000, RmFiles: 10000,
		ImportFiles: 20000, ImportBigBytes: 1 * gib, ChownFiles: 20000, ChownBytes: 1 * gib, ContainerStarts: 30,
		FindAgainAfter: []time.Duration{2 * time.Second, 10 * time.Second},
	},
}

func scaleByName(name string) (Scale, error) {
	s, ok := scales[name]
	if !ok {
		names := make([]string, 0, len(scales))
		for n := range scales {
			names = append(names, n)
		}
		sort.Strings(names)
		return Scale{}, fmt.Errorf("-scale %s: unknown scale (want %s)", name, strings.Join(names, ", "))
	}
	return s, nil
}

// TreeEntries is the number of entries find prints for the merged tree:
// its root, the dirs and the files.
func (s Scale) TreeEntries() int { return 1 + s.TreeDirs + s.TreeDirs*s.TreeFilesPerDir }

// sizeLabel prints a byte count the way the workload names do (4k, 1m, 1g).
func sizeLabel(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%dg", n/gib)
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%dm", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%dk", n/kib)
	}
	return fmt.Sprintf("%d", n)
}

// humanBytes prints a byte count for people (1 GiB, 100 MiB).
func humanBytes(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}
