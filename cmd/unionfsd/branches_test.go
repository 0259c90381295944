package main

import (
	"reflect"
	"testing"
)

// splitListCases are branch and lowerdir lists and their elements.
var splitListCases = map[string][]string{
	"":       {""},
	"a":      {"a"},
	"a:b":    {"a", "b"},
	`a\:b:c`: {"a:b", "c"},
	`a\b:c`:  {`a\b`, "c"},
	"a::":    {"a", "", ""},
	`a\`:     {`a\`},
}

func TestSplitList(t *testing.T) {
	cases := splitListCases
	for in, want := range cases {
		if got := splitList(in, ':'); !reflect.DeepEqual(got, want) {
			t.Errorf("splitList(%q) = %q, want %q", in, got, want)
		}
	}
}
