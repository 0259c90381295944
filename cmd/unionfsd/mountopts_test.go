package main

import (
	"reflect"
	"testing"
)

// splitOptionsCases are -o arguments and their options.
var splitOptionsCases = map[string][]string{
	"a,b":                   {"a", "b"},
	`a\,b,c`:                {"a,b", "c"},
	`x="p,q",y`:             {`x="p,q"`, "y"},
	`context="a:b:c1,c2",z`: {`context="a:b:c1,c2"`, "z"},
	"a,,b,":                 {"a", "", "b", ""},
}

func TestSplitOptions(t *testing.T) {
	cases := splitOptionsCases
	for in, want := range cases {
		if got := splitOptions(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitOptions(%q) = %q, want %q", in, got, want)
		}
	}
}
