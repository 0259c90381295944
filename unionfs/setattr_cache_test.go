package unionfs

import (
	"bytes"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSetattrReplyIsCached checks that the attributes a SETATTR reply
// carries stay in the kernel's cache: a stat right after chmod, chown or
// utimes costs no GETATTR. (go-fuse leaves a SETATTR reply's timeout at 0,
// so every tar-extracted file was stat'ed once more through the daemon.)
func TestSetattrReplyIsCached(t *testing.T) {
	tu := newLayers(t, 1)
	var logs syncBuffer
	log.SetOutput(&logs)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	tu.mount(t, func(c *Config) { c.Debug = true })
	f := tu.m("f")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o640); err != nil {
		t.Fatal(err)
	}
	mark := len(logs.String())
	for i := 0; i < 3; i++ {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v after chmod 0640", st.Mode())
		}
	}
	after := logs.String()[mark:]
	if n := strings.Count(after, ": GETATTR"); n > 0 {
		t.Errorf("%d GETATTR requests for stats right after a chmod; the SETATTR reply's attributes were not cached:\n%s", n, after)
	}
}
