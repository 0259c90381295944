// Package testsupport holds helpers that tests of several packages share.
// Only tests import it.
package testsupport

import (
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// KeepExchanging swaps the entries at a and b with RENAME_EXCHANGE in a
// loop, as an attacker racing a walk would (a directory becomes a symlink
// and back, atomically each time), until the returned stop is called; stop
// waits for the loop to end. A failed exchange fails t.
func KeepExchanging(t *testing.T, a, b string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("exchange %s and %s: %v", a, b, err)
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// ChangesWithin reports whether the content of the file at path changes
// within d (polled every 20 ms); a file that cannot be read reads as empty.
func ChangesWithin(path string, d time.Duration) bool {
	read := func() string {
		data, _ := os.ReadFile(path)
		return string(data)
	}
	a := read()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if read() != a {
			return true
		}
	}
	return false
}
