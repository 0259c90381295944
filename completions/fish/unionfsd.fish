# fish completion for unionfsd; generated from its flags and --help, do not edit.
complete -c unionfsd -l attr-timeout -r -d 'attribute cache timeout'
complete -c unionfsd -l debug -s d -d 'log FUSE requests (implies -f)'
complete -c unionfsd -l entry-timeout -r -d 'name cache timeout'
complete -c unionfsd -l foreground -s f -d 'stay in the foreground'
complete -c unionfsd -l help -s h -d 'show help'
complete -c unionfsd -l io-uring -r -d 'FUSE over io_uring: auto, on or off'
complete -c unionfsd -l lower-passthrough -d 'pass lower files through in a writable union'
complete -c unionfsd -l negative-timeout -r -d 'missing-name cache timeout'
complete -c unionfsd -l option -s o -r -f -a '_netdev allow_other allow_root attr_timeout= auto chroot= context= debug_file= defaults dev dirs= entry_timeout= exec fsname= fsync= gidmapping= io_uring= lower_passthrough= lowerdir= metacopy= negative_timeout= noacl noauto nodev noexec nofail nosuid passthrough= ro squash_to_gid= squash_to_root squash_to_uid= static_nlink suid threaded= timeout= uidmapping= upperdir= use_ino user users userxattr watch= whiteout_format= workdir= xino=' -d 'mount options'
complete -c unionfsd -l passthrough -d 'FUSE passthrough I/O'
complete -c unionfsd -l timeout -r -d 'all kernel cache timeouts'
complete -c unionfsd -l trace -d 'trace operations to FILE (stderr without =FILE)'
complete -c unionfsd -l trace-op -r -d 'trace only these operations'
complete -c unionfsd -l trace-path -r -d 'trace only paths under this prefix'
complete -c unionfsd -l version -d 'show version'
complete -c unionfsd -l watch -r -d 'direct layer changes: auto, fanotify, inotify or off'
complete -c unionfsd -l whiteout-format -r -d 'deletions in the upper: oci or overlay'
complete -c unionfsd -l workdir -r -d 'copy-up scratch dir'
complete -c unionfsd -n __fish_use_subcommand -a explain
complete -c unionfsd -n __fish_use_subcommand -a diff
complete -c unionfsd -n __fish_use_subcommand -a check
