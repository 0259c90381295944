package unionfs

import (
	"github.com/hanwen/go-fuse/v2/fs"
)

// Root is the root directory node of a union mount.
type Root struct {
	fs.Inode
	cfg Config
}

// NewRoot validates cfg and builds the root node of the union.
func NewRoot(cfg Config) (*Root, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Root{cfg: cfg}, nil
}

// Close releases what NewRoot opened.
func (r *Root) Close() error { return nil }
