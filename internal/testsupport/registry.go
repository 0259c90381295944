package testsupport

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RegistryBin is Debian's docker-registry (the distribution project's
// registry, serving the Registry HTTP API v2).
const RegistryBin = "/usr/bin/docker-registry"

// RegistryOptions tune StartRegistry.
type RegistryOptions struct {
	// Htpasswd, if set, is the content of an htpasswd file (bcrypt
	// entries): the registry then wants basic auth.
	Htpasswd string
}

// StartRegistry starts a registry on 127.0.0.1 with its storage in a temp
// dir of t, plain HTTP, and returns its host:port. It is stopped in
// t.Cleanup. The test is skipped when docker-registry is not installed.
func StartRegistry(t testing.TB, opts RegistryOptions) string {
	t.Helper()
	if _, err := os.Stat(RegistryBin); err != nil {
		t.Skip("docker-registry is not installed: apt-get install docker-registry")
	}
	dir := t.TempDir()
	addr := freeLoopbackAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)
	if opts.Htpasswd != "" {
		pw := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(pw, []byte(opts.Htpasswd), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", pw)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd := exec.Command(RegistryBin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", RegistryBin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited: %s", logs.String())
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return addr
			}
		}
	}
	t.Fatalf("docker-registry did not answer on %s within 10s: %s", addr, logs.String())
	return ""
}

// freeLoopbackAddr picks a free TCP port on 127.0.0.1.
func freeLoopbackAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ClosedLoopbackAddr is a 127.0.0.1 address nothing listens on (as far as
// can be told), for unreachable-registry tests.
func ClosedLoopbackAddr(t testing.TB) string { return freeLoopbackAddr(t) }
