package units

import (
	"math"
	"testing"
)

func TestBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{4096, "4.0 KiB"},
		{1<<20 - 1, "1024.0 KiB"},
		{1 << 20, "1.0 MiB"},
		{100 << 20, "100.0 MiB"},
		{1 << 30, "1.0 GiB"},
		{3 << 40, "3.0 TiB"},
		{math.MaxInt64, "8.0 EiB"},
		{-512, "-512 B"},
		{-2048, "-2048 B"},
	}
	for _, c := range cases {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
