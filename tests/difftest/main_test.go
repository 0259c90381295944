package difftest

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestMain detaches every mount left behind when the test binary is about
// to be killed by go test's -timeout, which skips t.Cleanup.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			margin := min(d/10, 10*time.Second)
			time.AfterFunc(d-margin, func() {
				if left := DetachAll(); len(left) > 0 {
					fmt.Fprintf(os.Stderr, "difftest: test timeout is near, detached %d mounts: %v\n", len(left), left)
				}
			})
		}
	}
	code := m.Run()
	if left := DetachAll(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "difftest: detached %d mounts left behind: %v\n", len(left), left)
		code = 1
	}
	os.Exit(code)
}
