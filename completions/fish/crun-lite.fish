# fish completion for crun-lite; generated from its flags and --help, do not edit.
complete -c crun-lite -l debug -d 'log debug messages too'
complete -c crun-lite -l help -s h -d 'show help'
complete -c crun-lite -l log -r -d 'write warnings and errors to this file (runc\'s --log)'
complete -c crun-lite -l log-format -r -d 'format of --log: text or json'
complete -c crun-lite -l quiet -s q -d 'no progress bars or warnings'
complete -c crun-lite -l root -r -d 'image store directory'
complete -c crun-lite -l systemd-cgroup -d 'manage cgroups through systemd (not supported)'
complete -c crun-lite -l version -s v -d 'print the version'
complete -c crun-lite -n __fish_use_subcommand -a check
complete -c crun-lite -n __fish_use_subcommand -a commit
complete -c crun-lite -n __fish_use_subcommand -a create
complete -c crun-lite -n __fish_use_subcommand -a delete
complete -c crun-lite -n __fish_use_subcommand -a exec
complete -c crun-lite -n __fish_use_subcommand -a explain
complete -c crun-lite -n __fish_use_subcommand -a export
complete -c crun-lite -n __fish_use_subcommand -a features
complete -c crun-lite -n __fish_use_subcommand -a images
complete -c crun-lite -n __fish_use_subcommand -a import
complete -c crun-lite -n __fish_use_subcommand -a inspect
complete -c crun-lite -n __fish_use_subcommand -a kill
complete -c crun-lite -n __fish_use_subcommand -a list
complete -c crun-lite -n __fish_use_subcommand -a login
complete -c crun-lite -n __fish_use_subcommand -a logout
complete -c crun-lite -n __fish_use_subcommand -a pause
complete -c crun-lite -n __fish_use_subcommand -a ps
complete -c crun-lite -n __fish_use_subcommand -a pull
complete -c crun-lite -n __fish_use_subcommand -a push
complete -c crun-lite -n __fish_use_subcommand -a resume
complete -c crun-lite -n __fish_use_subcommand -a rm
complete -c crun-lite -n __fish_use_subcommand -a rmi
complete -c crun-lite -n __fish_use_subcommand -a run
complete -c crun-lite -n __fish_use_subcommand -a spec
complete -c crun-lite -n __fish_use_subcommand -a start
complete -c crun-lite -n __fish_use_subcommand -a state
complete -c crun-lite -n __fish_use_subcommand -a tag
