package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/unionfsd/unionfsd/inspect"
	"github.com/unionfsd/unionfsd/unionfs"
)

// Background mode: the command re-executes itself with readyEnv set and the
// write end of a pipe as fd 3. The child (in a new session) checks and
// mounts, then writes one line to the pipe: "ready", or "fail CODE MESSAGE".
// The parent waits for that line, so it returns only once the mount is usable
// (or prints the child's error), and never leaves a daemon behind on failure.
const (
	readyEnv   = "_UNIONFSD_READY_FD"
	readyFD    = 3
	readyLine  = "ready"
	failPrefix = "fail "
)

// stopSignals unmount the union and end the daemon.
var stopSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP}

// reporter delivers the outcome of the mount attempt.
type reporter interface {
	// ready says the mount is up and serving.
	ready()
	// fail reports err and returns the exit status to use.
	fail(err error) int
}

// terminalReporter serves the foreground: errors go to stderr.
type terminalReporter struct{}

func (terminalReporter) ready()             {}
func (terminalReporter) fail(err error) int { return printError(err) }

// daemonReporter is the background child's side of the readiness pipe.
type daemonReporter struct{ pipe *os.File }

func (d *daemonReporter) ready() {
	// Let go of the caller's stderr before saying ready: whoever started us
	// (a shell pipeline, mount(8)) may be waiting for it to close, and once
	// the parent has exited nothing may still hold it.
	detachStdio()
	fmt.Fprintln(d.pipe, readyLine)
	d.pipe.Close()
}

func (d *daemonReporter) fail(err error) int {
	code := exitCode(err)
	fmt.Fprintf(d.pipe, "%s%d %s\n", failPrefix, code, oneLine(err.Error()))
	d.pipe.Close()
	return code
}

// reporterFromEnv returns the daemon reporter when we are the background
// child, else the terminal one.
func reporterFromEnv() (reporter, error) {
	v, ok := os.LookupEnv(readyEnv)
	if !ok {
		return terminalReporter{}, nil
	}
	// Keep the variable from leaking into helpers we run (fusermount).
	os.Unsetenv(readyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd != readyFD {
		return nil, fmt.Errorf("%s=%q: internal variable, do not set it", readyEnv, v)
	}
	unix.CloseOnExec(fd)
	return &daemonReporter{pipe: os.NewFile(uintptr(fd), "ready-pipe")}, nil
}

// detachStdio points stdin, stdout and stderr at /dev/null.
func detachStdio() {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	for fd := 0; fd <= 2; fd++ {
		unix.Dup3(int(null.Fd()), fd, 0)
	}
}

// startDaemon runs the same command line in a background child and waits
// for its report. Until it is ready the child writes its stderr into a pipe
// we read: a mount helper's message (fusermount says why it refused) then
// joins the one error line, and a crash is shown in full.
func startDaemon(args []string) int {
	exe, err := os.Executable()
	if err != nil {
		return printError(fmt.Errorf("cannot find own executable: %w", err))
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return printError(fmt.Errorf("readiness pipe: %w", err))
	}
	defer readyR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return printError(fmt.Errorf("stderr pipe: %w", err))
	}
	defer errR.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", readyEnv, readyFD))
	cmd.ExtraFiles = []*os.File{readyW} // becomes fd 3
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Pass ^C and kill to the child while it mounts: it cleans up and
	// reports, instead of mounting on after we are gone.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals...)
	defer signal.Stop(sigs)
	err = cmd.Start()
	readyW.Close()
	errW.Close()
	if err != nil {
		return printError(fmt.Errorf("%s: cannot start daemon: %w", exe, err))
	}
	go forwardSignals(sigs, cmd.Process)
	stderr := captureOutput(errR)
	return awaitReport(readyR, cmd, stderr)
}

func forwardSignals(sigs <-chan os.Signal, p *os.Process) {
	for s := range sigs {
		p.Signal(s)
	}
}

// captureOutput collects r until EOF; the channel yields the text then.
func captureOutput(r io.Reader) <-chan string {
	ch := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
		io.Copy(io.Discard, r)
		ch <- string(b)
	}()
	return ch
}

// awaitReport reads the child's line and turns it into our exit status.
func awaitReport(r io.Reader, cmd *exec.Cmd, stderr <-chan string) int {
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSuffix(line, "\n")
	if line == readyLine {
		// The child let go of the pipe before saying ready: what it
		// wrote is its warnings (a layer it cannot watch), ours to show.
		select {
		case extra := <-stderr:
			os.Stderr.WriteString(extra)
		case <-time.After(time.Second):
		}
		return exitOK // the child serves on; it is not ours to wait for
	}
	waitErr := cmd.Wait()
	var extra string
	select {
	case extra = <-stderr:
	case <-time.After(time.Second): // a stray grandchild holds the pipe
	}
	rest, ok := strings.CutPrefix(line, failPrefix)
	if !ok {
		os.Stderr.WriteString(extra)
		return printError(fmt.Errorf("daemon exited before the mount was ready: %v", waitErr))
	}
	codeText, msg, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil || code == 0 {
		code = exitFail
	}
	if extra = oneLine(extra); extra != "" && !strings.Contains(msg, extra) {
		msg += " (" + extra + ")"
	}
	fmt.Fprintln(os.Stderr, "unionfsd: "+msg)
	return code
}

// serve mounts the union, reports readiness and serves until a stop signal
// or an unmount from outside. It is the foreground mode and the daemon.
func serve(o *options, rep reporter) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals...)
	defer signal.Stop(sigs)
	// Before the chdir below: a relative trace file is the caller's.
	trace, closeTrace, err := o.trace.open()
	if err != nil {
		return rep.fail(err)
	}
	defer closeTrace()
	o.cfg.Trace = trace
	if _, isDaemon := rep.(*daemonReporter); isDaemon {
		// Paths are absolute now; do not keep the caller's cwd busy.
		os.Chdir("/")
	}
	server, err := unionfs.Mount(o.mountpoint, o.cfg)
	if err != nil {
		return rep.fail(mountError(o.mountpoint, err))
	}
	if o.peer.autoUnmount {
		watch, err := startAutoUnmount(o.mountpoint)
		if err != nil {
			server.Unmount()
			return rep.fail(err)
		}
		defer watch.Close()
	}
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case s := <-sigs:
		stop(server, o.mountpoint, done)
		return rep.fail(fmt.Errorf("%s: interrupted by %v while mounting; unmounted", o.mountpoint, s))
	default:
	}
	defer recordMount(o)()
	rep.ready()
	select {
	case <-done: // unmounted from outside
	case <-sigs:
		stop(server, o.mountpoint, done)
	}
	return exitOK
}

// recordMount writes the mount's layers where unionfsd explain and diff
// look for them, and returns the function that removes the record. A
// failure costs only those tools' convenience, so it is a warning.
func recordMount(o *options) (remove func()) {
	remove, err := inspect.SaveRecord(inspect.Record{Mountpoint: o.mountpoint, Upper: o.cfg.Upper,
		Work: o.cfg.Work, Lowers: o.cfg.Lowers, PID: os.Getpid(), Started: time.Now()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "unionfsd: warning: %v (explain and diff will need the layers spelled out)\n", err)
		return func() {}
	}
	return remove
}

// stop unmounts. A busy mount (open files, a shell's cwd) gets a few tries,
// then a lazy unmount: it vanishes from the tree at once and the kernel ends
// it when the last user lets go. We exit either way.
func stop(server *fuse.Server, mnt string, done <-chan struct{}) {
	for try := 1; try <= 3; try++ {
		select {
		case <-done:
			return
		default:
		}
		if server.Unmount() == nil {
			waitClosed(done, 2*time.Second)
			return
		}
		time.Sleep(time.Duration(try) * 100 * time.Millisecond)
	}
	if err := lazyUnmount(mnt); err != nil {
		fmt.Fprintf(os.Stderr, "unionfsd: %s: unmount: %v\n", mnt, err)
		return
	}
	fmt.Fprintf(os.Stderr, "unionfsd: %s: busy, detached (lazy unmount)\n", mnt)
	waitClosed(done, time.Second)
}

// lazyUnmount detaches mnt; users other than root need fusermount for it.
func lazyUnmount(mnt string) error {
	err := unix.Unmount(mnt, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: no longer mounted
		return nil
	}
	for _, name := range []string{"fusermount3", "fusermount"} {
		if out, ferr := exec.Command(name, "-u", "-z", mnt).CombinedOutput(); ferr == nil {
			return nil
		} else if !errors.Is(ferr, exec.ErrNotFound) {
			return fmt.Errorf("%s: %v", name, oneLine(string(out)))
		}
	}
	return err
}

func waitClosed(done <-chan struct{}, limit time.Duration) {
	select {
	case <-done:
	case <-time.After(limit):
	}
}
