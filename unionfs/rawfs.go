package unionfs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rawFS wraps go-fuse's node tree at the protocol level for what its node
// API cannot express: a WRITE flagged FUSE_WRITE_KILL_SUIDGID, or an OPEN
// with O_TRUNC flagged FUSE_OPEN_KILL_SUIDGID, makes us clear setuid/setgid
// (killpriv.go), and RENAME, UNLINK and RMDIR hold u.mu until go-fuse has
// changed its tree too.
type rawFS struct {
	fuse.RawFileSystem
	u *unionFS
}

// Rename holds u.mu for writing across the node's Rename and go-fuse's
// update of its tree, which follows it: a lookup or a path computed in
// between would see the tree's old names for entries the upper has moved.
func (k *rawFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	k.u.lockWrite()
	defer k.u.mu.Unlock()
	return k.RawFileSystem.Rename(cancel, in, oldName, newName)
}

// Unlink holds u.mu until go-fuse has taken the node out of its tree: an
// operation on the node meanwhile would build the removed name, which a
// create may already have given to another file.
func (k *rawFS) Unlink(cancel <-chan struct{}, in *fuse.InHeader, name string) fuse.Status {
	k.u.lockWrite()
	defer k.u.mu.Unlock()
	return k.RawFileSystem.Unlink(cancel, in, name)
}

// Rmdir holds u.mu as Unlink does.
func (k *rawFS) Rmdir(cancel <-chan struct{}, in *fuse.InHeader, name string) fuse.Status {
	k.u.lockWrite()
	defer k.u.mu.Unlock()
	return k.RawFileSystem.Rmdir(cancel, in, name)
}

var _ fuse.RawFileSystem = (*rawFS)(nil)

func (k *rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if st := k.killBeforeWrite(cancel, in); st != fuse.OK {
		return 0, st
	}
	return k.RawFileSystem.Writev(cancel, in, data)
}

func (k *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if st := k.killBeforeWrite(cancel, in); st != fuse.OK {
		return 0, st
	}
	return k.RawFileSystem.Write(cancel, in, data)
}

// killBeforeWrite clears setuid/setgid for a flagged write before the data
// goes in, as the kernel's own write path does: if that fails, nothing is
// written.
func (k *rawFS) killBeforeWrite(cancel <-chan struct{}, in *fuse.WriteIn) fuse.Status {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID == 0 {
		return fuse.OK
	}
	kill := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{
		InHeader: in.InHeader,
		Valid:    fuse.FATTR_KILL_SUIDGID | fuse.FATTR_FH,
		Fh:       in.Fh,
	}}
	var out fuse.AttrOut
	return k.RawFileSystem.SetAttr(cancel, &kill, &out)
}

// Open clears setuid/setgid after an O_TRUNC open the kernel flagged (an
// unprivileged caller's, with atomic O_TRUNC the truncation is ours to do,
// and so is what the kernel's truncate would clear). If clearing fails, the
// open fails.
func (k *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := k.RawFileSystem.Open(cancel, in, out)
	if st != fuse.OK || in.Mode&fuse.OPEN_KILL_SUIDGID == 0 {
		return st
	}
	kill := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{
		InHeader: in.InHeader,
		Valid:    fuse.FATTR_KILL_SUIDGID | fuse.FATTR_FH,
		Fh:       out.Fh,
	}}
	var attr fuse.AttrOut
	if st := k.RawFileSystem.SetAttr(cancel, &kill, &attr); st != fuse.OK {
		k.RawFileSystem.Release(cancel, &fuse.ReleaseIn{InHeader: in.InHeader, Fh: out.Fh, Flags: in.Flags})
		return st
	}
	return fuse.OK
}
