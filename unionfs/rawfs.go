package unionfs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rawFS wraps go-fuse's node tree at the protocol level for what its node
// API cannot express: a WRITE flagged FUSE_WRITE_KILL_SUIDGID makes us clear
// setuid/setgid (killpriv.go).
type rawFS struct {
	fuse.RawFileSystem
}

func (k *rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	n, st := k.RawFileSystem.Writev(cancel, in, data)
	return n, k.afterWrite(cancel, in, st)
}

func (k *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	n, st := k.RawFileSystem.Write(cancel, in, data)
	return n, k.afterWrite(cancel, in, st)
}

// afterWrite clears the bits after a successful flagged write.
func (k *rawFS) afterWrite(cancel <-chan struct{}, in *fuse.WriteIn, st fuse.Status) fuse.Status {
	if st != fuse.OK || in.WriteFlags&fuse.WRITE_KILL_SUIDGID == 0 {
		return st
	}
	kill := fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{
		InHeader: in.InHeader,
		Valid:    fuse.FATTR_KILL_SUIDGID | fuse.FATTR_FH,
		Fh:       in.Fh,
	}}
	var out fuse.AttrOut
	return k.RawFileSystem.SetAttr(cancel, &kill, &out)
}
