package testsupport

import (
	"errors"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// BusyboxImage writes a docker-save tarball of busybox:latest into a temp
// dir of t and returns its path; it skips the test when busybox-static is
// not installed. It lives here, not in imagetest, so that the image
// builder (which bench links) does not pull package testing into binaries.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("busybox image needs linux")
	}
	p := filepath.Join(t.TempDir(), "busybox.tar")
	err := imagetest.WriteBusyboxImage(p)
	if errors.Is(err, imagetest.ErrNoBusybox) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}
