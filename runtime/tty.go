package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// The pty of a -t container is created by the container init inside the
// container's own devpts (so `tty` names a device that exists there), and
// its master is sent over a unix socket to the front end, which copies it to
// and from the user's terminal: runc's console-socket design.

// openConsole creates a pty in the container's /dev/pts and binds its slave
// on /dev/console. It runs after pivot_root.
func openConsole() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	fail := func(e error) (*os.File, *os.File, error) { master.Close(); return nil, nil, e }
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fail(fmt.Errorf("unlock pty: %w", err))
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fail(fmt.Errorf("pty number: %w", err))
	}
	path := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("open %s: %w", path, err))
	}
	if err := makeMountPoint("/dev/console", false); err == nil {
		unix.Mount(path, "/dev/console", "", unix.MS_BIND, "")
	}
	return master, slave, nil
}

// useConsole makes slave the stdin, stdout, stderr and controlling
// terminal of the calling process (a session leader).
func useConsole(slave *os.File) error {
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("console: %w", err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("console: set controlling terminal: %w", err)
	}
	return nil
}

// sendFd passes f over the unix socket sock.
func sendFd(sock *os.File, f *os.File) error {
	rights := unix.UnixRights(int(f.Fd()))
	if err := unix.Sendmsg(int(sock.Fd()), []byte("pty"), rights, nil, 0); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	return nil
}

// recvFd receives one descriptor from sock; EOF (every sender gone) is an
// error.
func recvFd(sock *os.File) (*os.File, error) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, io.EOF
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return nil, errors.New("pty master: no descriptor in message")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			return nil, errors.New("pty master: no descriptor in message")
		}
		return os.NewFile(uintptr(fds[0]), "pty-master"), nil
	}
}

// consoleRelay copies between the user's terminal and a pty master.
type consoleRelay struct {
	master  *os.File
	in      *os.File
	out     io.Writer
	restore func()
	done    chan struct{}
	winch   chan os.Signal
}

// startRelay puts the user's terminal (if stdin is one) in raw mode, sizes
// the pty like it and starts copying.
func startRelay(master, in *os.File, out io.Writer) *consoleRelay {
	r := &consoleRelay{master: master, in: in, out: out, done: make(chan struct{}), restore: func() {}}
	if term.IsTerminal(int(in.Fd())) {
		if st, err := term.MakeRaw(int(in.Fd())); err == nil {
			r.restore = func() { term.Restore(int(in.Fd()), st) }
		}
	}
	r.resize()
	r.winch = make(chan os.Signal, 1)
	signal.Notify(r.winch, unix.SIGWINCH)
	go func() {
		for range r.winch {
			r.resize()
		}
	}()
	go io.Copy(master, in)
	go func() {
		io.Copy(out, master) // ends with EIO once the container closed its side
		close(r.done)
	}()
	return r
}

// resize copies the terminal's size to the pty.
func (r *consoleRelay) resize() {
	for _, f := range []*os.File{r.in, os.Stdout, os.Stderr} {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil {
			unix.IoctlSetWinsize(int(r.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(h), Col: uint16(w)})
			return
		}
	}
}

// finish waits (briefly) for the last output and restores the terminal.
func (r *consoleRelay) finish() {
	select {
	case <-r.done:
	case <-time.After(2 * time.Second):
	}
	signal.Stop(r.winch)
	close(r.winch)
	r.restore()
	r.master.Close()
}
