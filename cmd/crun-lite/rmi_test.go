package main

import (
	"os"
	"strings"
	"testing"
)

// TestRmiAllNamesOfAnImageInUse: removing every name of an image at once
// deletes it just like its ID does, so while a container uses it rmi must
// refuse, before it untags anything; one name of several may still go.
func TestRmiAllNamesOfAnImageInUse(t *testing.T) {
	e := newEnv(t)
	e.mustRun("import", "--name", "a:1", busyboxTar)
	e.mustRun("import", "--name", "b:1", busyboxTar)
	images := e.mustRun("images")
	for _, n := range []string{"a", "b", "busybox"} {
		if !strings.Contains(images, n) {
			t.Fatalf("setup: no name %s in\n%s", n, images)
		}
	}
	e.mustRun("run", "--name", "user", "a:1", "sh", "-c", "echo mine > /mine")
	layer := e.layerDir()

	r := e.run("rmi", "a:1", "b:1", "busybox")
	if r.code == 0 || !strings.Contains(r.err, "used by container(s) user") {
		t.Errorf("rmi of all names of an image a container uses: %v", r)
	}
	if _, err := os.Stat(layer); err != nil {
		t.Fatalf("the container's layer is gone: %v", err)
	}
	if got := e.mustRun("images"); got != images {
		t.Errorf("a refused rmi changed the names:\n%s\nwas\n%s", got, images)
	}
	// One name, then another: each leaves the image.
	e.mustRun("rmi", "a:1")
	e.mustRun("rmi", "b:1")
	if r := e.run("rmi", "busybox"); r.code == 0 || !strings.Contains(r.err, "used by container(s) user") {
		t.Errorf("rmi of the last name of an image in use: %v", r)
	}
	e.mustRun("commit", "user", "mine:1")
	if got := e.mustRun("run", "--rm", "mine:1", "cat", "/mine"); got != "mine\n" {
		t.Errorf("commit of the container after the rmi: %q", got)
	}
	e.mustRun("rm", "user")
	e.mustRun("rmi", "mine:1", "busybox")
	if _, err := os.Stat(layer); !os.IsNotExist(err) {
		t.Errorf("layer left after every image and container went: %v", err)
	}
}
