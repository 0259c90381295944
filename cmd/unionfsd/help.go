package main

const helpText = `unionfsd - union of directories over FUSE (copy-up, OCI whiteouts)

Usage:
  unionfsd [flags] BRANCH[=RW|=RO][:BRANCH...] MOUNTPOINT
  unionfsd [flags] -o lowerdir=LOWER[:LOWER...][,upperdir=UPPER[,workdir=WORK]] [SOURCE] MOUNTPOINT
  mount -t fuse.unionfsd SOURCE MOUNTPOINT -o OPTIONS
  unionfsd explain MOUNTPOINT PATH       a path's stack through every layer
  unionfsd diff MOUNTPOINT|UPPERDIR      the upper's changes (A/C/D/O lines)
  unionfsd check [--repair] UPPERDIR WORKDIR [LOWER...]   find crash damage
  (run "unionfsd explain --help" etc. for each one)

Layers are listed top first in both syntaxes.
  Branch list (unionfs-fuse style): with no =RW/=RO marks the first branch is
  the writable upper layer and the rest are read-only. With marks, unmarked
  branches are read-only; at most one branch may be =RW and it must be the
  first; all =RO gives a read-only union.
  lowerdir/upperdir/workdir (overlay and fuse-overlayfs style): no upperdir
  gives a read-only union. SOURCE (e.g. "none") is shown in /proc/mounts.
Write "\:" for a colon inside a path, "\," for a comma inside an -o value.
Deleted files show up in the upper as ".wh.NAME", replaced dirs hold
".wh..wh..opq"; the workdir defaults to UPPER/.wh..wh.unionfsd.work.

Flags:
  -o OPT[,OPT...]           mount options, see below (may repeat)
  -f, --foreground          stay in the foreground
  -d, --debug               log every FUSE request to stderr (implies -f)
      --workdir DIR         copy-up scratch dir, on the upper's filesystem
      --passthrough=BOOL    kernel FUSE passthrough I/O when the kernel allows
                            it (default true)
      --lower-passthrough=BOOL  pass lower files through too in a writable
                            union (default true; needs root): readers that
                            opened a file before its copy-up keep reading
                            the lower copy (README: Lower passthrough)
      --watch MODE          how direct changes in the layer dirs reach the
                            kernel's caches: auto (default), fanotify,
                            inotify or off (see below)
      --io-uring MODE       FUSE over io_uring (Linux 6.14+, fuse module
                            parameter enable_uring=Y): on (fail the mount if
                            unavailable), auto (when the kernel offers it;
                            the default), off (/dev/fuse)
      --timeout D           set the three cache timeouts below at once
      --entry-timeout D     kernel cache time for names
      --attr-timeout D      kernel cache time for attributes
      --negative-timeout D  kernel cache time for missing names
                            (default 24h where the layers are watched, 1s
                            where they are not)
      --whiteout-format F   what deletions write into the upper: oci (".wh."
                            files, the default) or overlay (0/0 devices and
                            opaque xattrs, for kernel-overlay tools)
      --trace[=FILE]        one line per operation with the layer that answered
                            and what it caused (copy-up, whiteout, opaque);
                            to FILE (appended), or to stderr (implies -f)
      --trace-path PREFIX   trace only paths under PREFIX (may repeat)
      --trace-op OP[,OP]    trace only these operations: lookup, open,
                            create, mkdir, mknod, symlink, link, unlink,
                            rmdir, rename, setattr, setxattr, removexattr
  -h, --help                show this help
      --version             show the version

Mount options (-o):
  lowerdir=L1:L2 upperdir=U workdir=W   the layers (overlay style)
  ro                        read-only: the upper layer is left out
  allow_other               let other users in (always on when run as root)
  fsync=1|0                 fsync copied-up files before they appear (default 1);
                            "volatile" means fsync=0
  passthrough=on|off        as --passthrough
  lower_passthrough=on|off  as --lower-passthrough
  watch=auto|fanotify|inotify|off   as --watch
  io_uring=auto|on|off      as --io-uring
  timeout=SECS, entry_timeout=SECS, attr_timeout=SECS, negative_timeout=SECS
  fsname=NAME               source shown in /proc/mounts
  metacopy=on|off           chown, chmod, utimes, xattrs copy metadata only
  whiteout_format=oci|overlay   as --whiteout-format
  As fuse-overlayfs takes them (podman's mount_program, see docs/podman.md):
  uidmapping=ID:MAPPED:COUNT[:ID:MAPPED:COUNT...], gidmapping=...
                            layer files owned by ID+k show as MAPPED+k, and
                            MAPPED+k set through the mount is stored as ID+k;
                            other ids show as 65534
  squash_to_root, squash_to_uid=N, squash_to_gid=N
                            show every file as owned by 0 or N
  static_nlink              directories report nlink 1
  noexec, nosuid, nodev     mount flags; nosuid and nodev are the default;
  exec, suid, dev           clear them (suid and dev: root only)
  Accepted and ignored: rw, debug (= -d), *atime, lazytime, sync, async,
  auto, noauto, user, users, _netdev, nofail, defaults, x-*, comment=,
  context=, userxattr, threaded=N (always parallel), xattr_permissions=N
  (ownership is always stored in the inode).
  The options of unionfs-fuse, libfuse and fuse-overlayfs (cow, max_files=N,
  chroot=DIR, dirs=BRANCHES, debug_file=FILE, use_ino, allow_root, noacl,
  xino=, ...) work where unionfsd can do what they mean there and are refused
  otherwise: README.md, "Options from unionfs-fuse, libfuse and fuse-overlayfs".

Watching and cache timeouts: the kernel caches names, attributes and misses.
Changes made through the mount always show at once. Changes made directly in
a layer dir show within milliseconds while the layers are watched: fanotify
(whole filesystems; needs root) or inotify (the directories the kernel has
looked up, within fs.inotify.max_user_watches); auto picks fanotify when it
may. The caches then last 24h. What cannot be watched gets 1s timeouts, and
unionfsd says so on stderr at mount. watch=off: 1s timeouts everywhere; a
change can take that long to show. Explicit timeouts are used as given.

Without -f, unionfsd returns once the mount is ready and serves it in the
background; it prints the error and exits 1 if the mount fails (2 for a
command-line error). SIGINT, SIGTERM or "umount MOUNTPOINT" stop it.
While it serves, it records the mount's layers in /run/unionfsd (for other
users $XDG_RUNTIME_DIR/unionfsd) so explain and diff find them.

Examples:
  unionfsd upper:lower2:lower1 /mnt/merged
  unionfsd -o cow /srv/rw=RW:/srv/base=RO /mnt/merged
  unionfsd /srv/a=RO:/srv/b=RO /mnt/readonly
  unionfsd -o lowerdir=/l2:/l1,upperdir=/u,workdir=/w none /mnt/merged
  unionfsd -f --watch off --timeout 0 upper:lower /mnt/merged
  mount -t fuse.unionfsd none /mnt/merged -o lowerdir=/l2:/l1,upperdir=/u,workdir=/w
  unionfsd --trace=/tmp/trace.log --trace-path /etc upper:lower /mnt/merged
  unionfsd explain /mnt/merged /etc/hosts
  umount /mnt/merged
  fstab: none /mnt/merged fuse.unionfsd lowerdir=/l2:/l1,upperdir=/u,workdir=/w 0 0
mount(8) runs /sbin/mount.fuse3 with a cleared PATH, so for "mount -t
fuse.unionfsd" unionfsd must be in /usr/local/sbin, /usr/local/bin, /usr/sbin,
/usr/bin, /sbin or /bin (fuse3 package needed), or use
  mount -t fuse /path/to/unionfsd#none /mnt/merged -o lowerdir=...
`
