package userns

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMaps(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		uidMap          string // "" for a missing file
		initial, inside bool
	}{
		{"         0          0 4294967295\n", true, false},
		{"         0       1000          1\n", false, true},
		{"         0     100000      65536\n", false, true},
		{"", false, false},
	} {
		uidMapPath = filepath.Join(dir, "uid_map")
		os.Remove(uidMapPath)
		if c.uidMap != "" {
			if err := os.WriteFile(uidMapPath, []byte(c.uidMap), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if Initial() != c.initial || Inside() != c.inside {
			t.Errorf("uid_map %q: Initial %v Inside %v, want %v %v", c.uidMap, Initial(), Inside(), c.initial, c.inside)
		}
	}
	uidMapPath = "/proc/self/uid_map"
}
