package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrNotLoggedIn is returned by Logout for a registry without credentials.
var ErrNotLoggedIn = errors.New("not logged in")

// AuthFile is the credentials file login writes: the one that
// authn.DefaultKeychain reads first, so a pull finds what login stored.
// That is docker's config.json when it exists ($DOCKER_CONFIG or
// ~/.docker), else $REGISTRY_AUTH_FILE, else podman's
// $XDG_RUNTIME_DIR/containers/auth.json, else
// ~/.config/containers/auth.json.
func AuthFile() (string, error) {
	home, _ := os.UserHomeDir()
	if d := os.Getenv("DOCKER_CONFIG"); d != "" && regularFile(filepath.Join(d, "config.json")) {
		return filepath.Join(d, "config.json"), nil
	}
	if home != "" && regularFile(filepath.Join(home, ".docker", "config.json")) {
		return filepath.Join(home, ".docker", "config.json"), nil
	}
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		return p, nil
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "containers", "auth.json"), nil
	}
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home == "" {
			return "", errors.New("no credentials file: set REGISTRY_AUTH_FILE or HOME")
		}
		cfg = filepath.Join(home, ".config")
	}
	return filepath.Join(cfg, "containers", "auth.json"), nil
}

func regularFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// authKey is the key of a registry in the auths map; docker.io has
// docker's historical one, which the keychain also looks up.
func authKey(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return authn.DefaultAuthKey
	}
	return reg.RegistryStr()
}

func (o Options) registry(host string) (name.Registry, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://"), "/")
	var opts []name.Option
	if !o.TLSVerify {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return reg, fmt.Errorf("%w: registry %q: %v", ErrBadReference, host, err)
	}
	return reg, nil
}

// Login checks user and password against the registry and stores them in
// AuthFile. Nothing is written when the registry refuses them.
func Login(ctx context.Context, host, user, password string, opts Options) error {
	reg, err := opts.registry(host)
	if err != nil {
		return err
	}
	auth := &authn.Basic{Username: user, Password: password}
	if err := checkLogin(ctx, reg, auth, opts); err != nil {
		return err
	}
	path, err := AuthFile()
	if err != nil {
		return err
	}
	entry, _ := json.Marshal(map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))})
	return updateAuths(path, func(auths map[string]json.RawMessage) error {
		auths[authKey(reg)] = entry
		return nil
	})
}

// checkLogin authenticates once against /v2/ (a token exchange when the
// registry uses tokens, basic auth otherwise).
func checkLogin(ctx context.Context, reg name.Registry, auth authn.Authenticator, opts Options) error {
	tr, err := transport.NewWithContext(ctx, reg, auth, opts.transport(), []string{reg.Scope(transport.PullScope)})
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		// A token service refused the credentials.
		return fmt.Errorf("login %s: invalid username or password (%d)", reg.RegistryStr(), terr.StatusCode)
	}
	if err != nil {
		return describe("login", stringer(reg.RegistryStr()), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return describe("login", stringer(reg.RegistryStr()), err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("login %s: invalid username or password (%s)", reg.RegistryStr(), resp.Status)
	}
	return fmt.Errorf("login %s: the registry answered %s", reg.RegistryStr(), resp.Status)
}

type stringer string

func (s stringer) String() string { return string(s) }

// Logout removes the registry's credentials from AuthFile.
func Logout(host string, opts Options) error {
	reg, err := opts.registry(host)
	if err != nil {
		return err
	}
	path, err := AuthFile()
	if err != nil {
		return err
	}
	return updateAuths(path, func(auths map[string]json.RawMessage) error {
		key := authKey(reg)
		if _, ok := auths[key]; !ok {
			return fmt.Errorf("logout %s: %w (no credentials in %s)", reg.RegistryStr(), ErrNotLoggedIn, path)
		}
		delete(auths, key)
		return nil
	})
}

// updateAuths changes the "auths" map of a docker or containers auth file,
// keeping every other field, and replaces the file atomically, mode 0600.
func updateAuths(path string, change func(map[string]json.RawMessage) error) error {
	doc := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("read %s: malformed JSON: %v", path, err)
		}
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("read %s: auths: malformed JSON: %v", path, err)
		}
	}
	if err := change(auths); err != nil {
		return err
	}
	doc["auths"], _ = json.Marshal(auths)
	out, _ := json.MarshalIndent(doc, "", "\t")
	return writeAtomic(path, append(out, '\n'))
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".auth-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
