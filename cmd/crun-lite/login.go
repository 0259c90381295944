package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/unionfsd/unionfsd/layers/registry"
	"golang.org/x/term"
)

var (
	loginUser, loginPassword   string
	loginStdin, loginTLSVerify bool
)

func init() {
	register(&command{
		name:    "login",
		args:    "[-u USER] [-p PASSWORD | --password-stdin] REGISTRY",
		summary: "store credentials for a registry (where docker and podman keep theirs)",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&loginUser, "username", "u", "", "user name (asked for on a terminal when missing)")
			fs.StringVarP(&loginPassword, "password", "p", "", "password (visible to other users in ps: prefer --password-stdin)")
			fs.BoolVar(&loginStdin, "password-stdin", false, "read the password from standard input")
			fs.BoolVar(&loginTLSVerify, "tls-verify", true, "require HTTPS with a valid certificate (loopback registries are plain HTTP anyway)")
		},
		run: runLogin,
	})
	register(&command{
		name:    "logout",
		args:    "REGISTRY",
		summary: "remove the stored credentials of a registry",
		run:     runLogout,
	})
}

func runLogin(g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("want one REGISTRY, got %d arguments", len(args))
	}
	if loginStdin && loginPassword != "" {
		return usagef("--password and --password-stdin exclude each other")
	}
	user, password := loginUser, loginPassword
	var err error
	if user == "" {
		if loginStdin || !term.IsTerminal(int(os.Stdin.Fd())) {
			return usagef("-u USER is required when standard input is not a terminal")
		}
		if user, err = prompt(g, "Username: "); err != nil {
			return err
		}
	}
	switch {
	case loginStdin:
		password, err = readPassword(os.Stdin)
	case password == "":
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return usagef("give the password with --password-stdin (standard input is not a terminal)")
		}
		fmt.Fprint(g.stderr, "Password: ")
		var b []byte
		b, err = term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(g.stderr)
		password = string(b)
	}
	if err != nil {
		return fmt.Errorf("login: read password: %w", err)
	}
	if user == "" || password == "" {
		return errors.New("login: empty user name or password")
	}
	ctx, cancel := signalContext()
	defer cancel()
	if err := registry.Login(ctx, args[0], user, password, registry.Options{TLSVerify: loginTLSVerify}); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, "Login Succeeded!")
	return nil
}

func prompt(g *globals, label string) (string, error) {
	fmt.Fprint(g.stderr, label)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("login: read user name: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// readPassword reads the password from a pipe: everything up to the end,
// without the trailing newline (echo adds one).
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	return strings.TrimRight(string(b), "\r\n"), err
}

func runLogout(g *globals, args []string) error {
	if len(args) != 1 {
		return usagef("want one REGISTRY, got %d arguments", len(args))
	}
	if err := registry.Logout(args[0], registry.Options{TLSVerify: true}); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Removed login credentials for %s\n", args[0])
	return nil
}
