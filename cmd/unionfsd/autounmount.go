package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
)

// libfuse's auto_unmount: the mount goes away when the daemon dies, even by
// SIGKILL. As fusermount3 does it, a watcher process in a session of its
// own holds one end of a pipe whose other end only the daemon has; when
// the pipe reports EOF the daemon is gone, and the watcher unmounts
// (lazily) if the mount is still there and dead.

// autoUnmountEnv marks the watcher; its argument is the mountpoint.
const autoUnmountEnv = "_UNIONFSD_AUTO_UNMOUNT"

// watchFD is where the watcher finds the read end of the pipe.
const watchFD = 3

// startAutoUnmount starts the watcher for the mount at mnt and returns the
// daemon's end of the pipe, which must stay open for as long as the daemon
// serves (it is close-on-exec: no child of ours inherits it).
func startAutoUnmount(mnt string) (*os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("auto_unmount: cannot find own executable: %w", err)
	}
	// The watcher must hold no descriptor of ours but the pipe: with
	// /dev/fuse (go-fuse opens it without O_CLOEXEC) the connection would
	// outlive the daemon, and the watcher's check would wait forever on it.
	if err := closeOnExecAll(); err != nil {
		return nil, fmt.Errorf("auto_unmount: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("auto_unmount: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, mnt)
	cmd.Env = append(os.Environ(), autoUnmountEnv+"=1")
	cmd.ExtraFiles = []*os.File{r} // becomes watchFD
	cmd.Dir = "/"                  // keep no dir busy
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("auto_unmount: cannot start the watcher: %w", err)
	}
	// Nobody waits for it: it outlives us by design, and init reaps it.
	cmd.Process.Release()
	return w, nil
}

// closeOnExecAll marks every descriptor above stderr close-on-exec.
func closeOnExecAll() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd) // fails only for the dir's own fd, now closed
		}
	}
	return nil
}

// isAutoUnmountWatcher reports whether this process is the watcher.
func isAutoUnmountWatcher() bool {
	_, ok := os.LookupEnv(autoUnmountEnv)
	return ok
}

// watchAndUnmount is the watcher: it waits for the daemon to go, then
// unmounts mnt if the daemon left it behind. The stop signals of the
// daemon are ignored, so that killing the daemon's group leaves the watcher
// to clean up.
func watchAndUnmount(args []string) int {
	os.Unsetenv(autoUnmountEnv)
	signal.Ignore(stopSignals...)
	if len(args) != 1 {
		return exitUsage
	}
	mnt := args[0]
	pipe := os.NewFile(watchFD, "auto-unmount-pipe")
	io.Copy(io.Discard, pipe) // returns at EOF: the daemon is gone
	if !leftBehind(mnt) {
		return exitOK
	}
	if err := lazyUnmount(mnt); err != nil {
		return exitFail // nowhere to report: our stdio is /dev/null
	}
	return exitOK
}

// leftBehind reports whether mnt is still a unionfsd mount whose daemon is
// gone, the test fusermount3 makes: a clean unmount (umount, a stop signal)
// leaves nothing, and a new mount there answers.
func leftBehind(mnt string) bool {
	m, ok := inspect.MountAt(mnt)
	if !ok || m.FSType != "fuse.unionfsd" {
		return false
	}
	// An open, not a stat: the kernel may answer a stat from its cache,
	// but sends every OPENDIR, which a dead connection fails: ENOTCONN, or
	// ECONNABORTED when the request was queued just before the kernel
	// saw the last /dev/fuse descriptor go (the pipe can close first).
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}
