package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// A fresh filesystem per sample for the workloads that create many inodes
// (workload.freshFS: untar, rm-rf). ext4 without a journal (this machine's
// root) skips, in ext4_new_inode, every free inode that was freed less than
// 60 s ago (360 s while its inode table block is dirty) and whose inode
// table block is in the buffer cache (recently_deleted()), and each skipped
// inode costs a buffer cache lookup on every later create: right after
// someone deleted a 20k-file tree on the same filesystem, untar paid up to a
// third of its time in find_inode_bit/recently_deleted, for whichever method
// came next. Emptying the trash between rounds followed by a cache drop did
// not end it (the drop only hides the freed inodes until the creates read
// their inode table blocks back in), and deletions by other runs on a shared
// machine cannot be scheduled around. So these samples put the upper and work
// dirs (native: its target dir) on an ext4 made for the sample, with the
// root's features (no journal), where no inode was ever freed: every method
// creates on never-used inodes, on the same kind of filesystem. Only the
// image file is deleted afterwards: one inode on the cache's filesystem.

// freshFS is one sample's filesystem: an image file loop-mounted on dir.
type freshFS struct {
	img, dir string
	release  func() error
}

// freshFSSize sizes the image for the scale's untar and rm-rf: room for
// four times their files and data (sparse, so unused room costs nothing).
func freshFSSize(s Scale) (bytes int64, inodes int) {
	files := s.TarFiles + s.TarFiles/100 + s.RmFiles + s.RmFiles/10
	return 4*int64(files)*8*kib + 256*mib, 4*files + 4096
}

// newFreshFS makes and mounts a new ext4 for one sample under dir.
func (e *env) newFreshFS(name string) (*freshFS, error) {
	f := &freshFS{img: filepath.Join(e.scratch, name+".img"), dir: filepath.Join(e.scratch, name)}
	size, inodes := freshFSSize(e.ds.Scale)
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Truncate(f.img, 0); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	img, err := os.OpenFile(f.img, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	err = img.Truncate(size)
	img.Close()
	if err != nil {
		return nil, err
	}
	// lazy_itable_init=0: no ext4lazyinit thread zeroing inode tables in the
	// background during the sample.
	mkfs := exec.Command("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-N", strconv.Itoa(inodes),
		"-E", "lazy_itable_init=0,nodiscard", f.img)
	if out, err := mkfs.CombinedOutput(); err != nil {
		os.Remove(f.img)
		return nil, fmt.Errorf("mkfs.ext4 %s: %v: %s", f.img, err, oneLine(string(out)))
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop", f.img, f.dir).CombinedOutput(); err != nil {
		os.Remove(f.img)
		return nil, fmt.Errorf("mount -o loop %s: %v: %s", f.img, err, oneLine(string(out)))
	}
	f.release = pending.add(func() error {
		err := unmount(f.dir)
		if rerr := os.Remove(f.img); err == nil && rerr != nil && !os.IsNotExist(rerr) {
			err = rerr
		}
		return err
	})
	return f, nil
}

// close unmounts the filesystem (its loop device goes with it) and deletes
// the image.
func (f *freshFS) close() error {
	if f == nil || f.release == nil {
		return nil
	}
	err := f.release()
	f.release = nil
	return err
}
