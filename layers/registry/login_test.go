package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/unionfsd/unionfsd/internal/testsupport"
	"github.com/unionfsd/unionfsd/layers"
	"github.com/unionfsd/unionfsd/layers/imagetest"
)

// isolateAuth points every credentials lookup into a temp dir: no docker
// config, REGISTRY_AUTH_FILE there. It returns the auth file's path.
func isolateAuth(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	p := filepath.Join(dir, "auth.json")
	t.Setenv("REGISTRY_AUTH_FILE", p)
	return p
}

// TestLoginPushPullLogout runs against a registry that wants basic auth:
// without credentials a push is refused; a wrong password writes nothing;
// login stores credentials that push and pull then find; logout removes
// them, and a second logout says there were none.
func TestLoginPushPullLogout(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	reg := testsupport.StartRegistry(t, testsupport.RegistryOptions{Htpasswd: "alice:" + string(hash) + "\n"})
	authFile := isolateAuth(t)
	ctx := context.Background()

	src := openStore(t)
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := imagetest.WriteDockerArchive(archive, imagetest.Image{Names: []string{"demo:1"}, Layers: []imagetest.Layer{
		{Entries: []imagetest.Entry{imagetest.File("hello", "hi", 0o644)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Import(archive, layers.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	dest, _ := ParseReference(reg + "/private/demo:1")
	push := func() error { _, err := Push(ctx, src, "demo:1", dest, Options{}); return err }

	if err := push(); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("push without credentials: %v", err)
	}
	if err := Login(ctx, reg, "alice", "wrong", Options{}); err == nil || !strings.Contains(err.Error(), "invalid username or password") {
		t.Errorf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(authFile); !os.IsNotExist(err) {
		t.Errorf("a failed login wrote %s (%v)", authFile, err)
	}
	// Another tool's entries and fields in the file survive.
	os.WriteFile(authFile, []byte(`{"auths":{"other.example":{"auth":"eDp5"}},"credHelpers":{"x":"y"}}`), 0o600)
	if err := Login(ctx, reg, "alice", "s3cret", Options{}); err != nil {
		t.Fatalf("login: %v", err)
	}
	var doc struct {
		Auths       map[string]struct{ Auth string }
		CredHelpers map[string]string
	}
	data, _ := os.ReadFile(authFile)
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Auths[reg].Auth != base64.StdEncoding.EncodeToString([]byte("alice:s3cret")) || doc.Auths["other.example"].Auth != "eDp5" || doc.CredHelpers["x"] != "y" {
		t.Errorf("auth file after login: %s", data)
	}
	if st, _ := os.Stat(authFile); st.Mode().Perm() != 0o600 {
		t.Errorf("auth file mode %v, want 0600", st.Mode().Perm())
	}
	if err := push(); err != nil {
		t.Fatalf("push after login: %v", err)
	}
	if img, err := pull(t, openStore(t), dest.String()); err != nil || len(img.Layers) != 1 {
		t.Fatalf("pull after login: %v", err)
	}
	if err := Logout(reg, Options{}); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if _, err := pull(t, openStore(t), dest.String()); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("pull after logout: %v", err)
	}
	if err := Logout(reg, Options{}); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("second logout: %v", err)
	}
}

// TestAuthFileFollowsKeychain: login writes where the default keychain
// reads first.
func TestAuthFileFollowsKeychain(t *testing.T) {
	isolateAuth(t)
	home := os.Getenv("HOME")
	check := func(want string) {
		t.Helper()
		if got, err := AuthFile(); err != nil || got != want {
			t.Errorf("AuthFile() = %q, %v; want %q", got, err, want)
		}
	}
	check(os.Getenv("REGISTRY_AUTH_FILE"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	check(filepath.Join(home, "run", "containers", "auth.json"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	check(filepath.Join(home, "config", "containers", "auth.json"))
	docker := filepath.Join(home, ".docker", "config.json")
	os.MkdirAll(filepath.Dir(docker), 0o700)
	os.WriteFile(docker, []byte("{}"), 0o600)
	check(docker)
}
