// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

const enableURingParam = "/sys/module/fuse/parameters/enable_uring"

// enableIoUring switches on the fuse module's enable_uring parameter
// for the test, and restores it after. It skips the test if the kernel
// has no FUSE over io_uring or the parameter cannot be set.
func enableIoUring(t *testing.T) {
	old, err := os.ReadFile(enableURingParam)
	if err != nil {
		t.Skipf("FUSE over io_uring unavailable (needs Linux 6.14+): %v", err)
	}
	if strings.TrimSpace(string(old)) == "Y" {
		return
	}
	if err := os.WriteFile(enableURingParam, []byte("Y"), 0); err != nil {
		t.Skipf("cannot enable FUSE over io_uring: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(enableURingParam, old, 0); err != nil {
			t.Errorf("restore %s: %v", enableURingParam, err)
		}
	})
}

func TestIoUringBasic(t *testing.T) {
	enableIoUring(t)
	tc := newTestCase(t, &testOptions{ioUring: true})
	if _, err := tc.server.IoUring(); err != nil {
		t.Fatal(err)
	}

	before, _ := tc.server.IoUring()
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, several WRITEs and READs
	fn := filepath.Join(tc.mntDir, "file")
	if err := os.WriteFile(fn, want, 0644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(fn)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read back %d bytes, differing from the %d written", len(got), len(want))
	}
	if err := os.Rename(fn, fn+"2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(tc.mntDir); err != nil {
		t.Fatal(err)
	}
	after, err := tc.server.IoUring()
	if err != nil {
		t.Fatal(err)
	}
	// LOOKUP, CREATE, WRITEs, FLUSH, RELEASE, OPEN, READs, RENAME,
	// OPENDIR, READDIRPLUS, RELEASEDIR: well over ten.
	if after-before < 10 {
		t.Errorf("%d requests over io_uring, want at least 10", after-before)
	}
}

func TestIoUringPosix(t *testing.T) {
	enableIoUring(t)
	for nm, fn := range posixtest.All {
		t.Run(nm, func(t *testing.T) {
			tc := newTestCase(t, &testOptions{
				suppressDebug: true,
				attrCache:     true,
				entryCache:    true,
				enableLocks:   true,
				ioUring:       true,
			})
			fn(t, tc.mntDir)
			if n, err := tc.server.IoUring(); err != nil || n == 0 {
				t.Errorf("served %d requests over io_uring: %v", n, err)
			}
		})
	}
}
