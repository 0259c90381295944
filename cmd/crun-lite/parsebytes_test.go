package main

import "testing"

// TestParseBytes: -m takes docker's spellings (issue 15: "-m 512mb" and
// "-m 1.5g" were refused).
func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "4096": 4096, "64k": 64 << 10, "512m": 512 << 20, "512mb": 512 << 20, "512MB": 512 << 20,
		"1g": 1 << 30, "1.5g": 3 << 29, "2gb": 2 << 30,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1m", "1x", "m"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		}
	}
}
