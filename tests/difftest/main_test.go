package difftest

import (
	"testing"

	"github.com/unionfsd/unionfsd/internal/testsupport"
)

// TestMain detaches the mounts left behind (testsupport.MainDetachingMounts).
func TestMain(m *testing.M) { testsupport.MainDetachingMounts(m, "difftest", DetachAll) }
