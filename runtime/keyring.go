package runtime

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// joinSessionKeyring gives the container a session keyring of its own, as
// runc does unless --no-new-keyring: without it the container's keys
// (kerberos tickets, fscrypt keys, ...) would be the caller's. A kernel
// without keyrings (ENOSYS) has nothing to share.
func (in *containerInit) joinSessionKeyring() error {
	if !in.a.NewKeyring {
		return nil
	}
	_, err := unix.KeyctlJoinSessionKeyring("_ses." + in.c.ID)
	if err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("join a new session keyring: %w", err)
	}
	return nil
}
