package procfs

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

func TestStatusField(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	got, err := StatusField("self", "Umask")
	if err != nil || len(got) != 1 || got[0] != "0027" {
		t.Errorf("Umask of self = %q, %v; want [0027]", got, err)
	}
	pid, err := StatusField(strconv.Itoa(os.Getpid()), "Pid")
	if err != nil || len(pid) != 1 || pid[0] != strconv.Itoa(os.Getpid()) {
		t.Errorf("Pid = %q, %v; want [%d]", pid, err, os.Getpid())
	}
	if _, err := StatusField("self", "NoSuchField"); err == nil {
		t.Error("a missing field gave no error")
	}
	if _, err := StatusField("0", "Pid"); err == nil {
		t.Error("a missing process gave no error")
	}
}
