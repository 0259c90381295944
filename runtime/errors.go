package runtime

import (
	"errors"
	"fmt"
)

// Exit statuses of a run, as podman and docker use them.
const (
	ExitRunner    = 125 // crun-lite itself failed (bad input, mount, cgroup, ...)
	ExitCannotRun = 126 // the command exists but cannot be invoked
	ExitNotFound  = 127 // the command was not found
	exitSignal    = 128 // + N when the process was killed by signal N
)

// Error is a failure with the exit status the command line should return.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the status the command line exits with.
func (e *Error) ExitCode() int { return e.Code }

// runnerErr wraps a formatted error as a runner failure (exit 125).
func runnerErr(format string, args ...any) error {
	return &Error{Code: ExitRunner, Err: fmt.Errorf(format, args...)}
}

// withCode gives err the exit status code unless it already has one.
func withCode(err error, code int) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: code, Err: err}
}

// ExitCodeOf returns the exit status err asks for: its Code when it is an
// *Error, ExitRunner otherwise, 0 for nil.
func ExitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitRunner
}

// ErrNotFound is returned (wrapped) when no container has the given name or ID.
var ErrNotFound = errors.New("no such container")
