// Package registry moves images between a registry (the Registry HTTP API
// v2, as docker.io, quay.io or a local docker-registry serve it) and the
// image store, through go-containerregistry. A pull downloads into an OCI
// layout in the store's staging area, which the store's own Import then
// verifies and extracts exactly as it does for a file: nothing a registry
// serves is trusted more than an archive from disk. A push sends the stored
// blobs as they are.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/unionfsd/unionfsd/layers"
)

// Options tune a pull, push or login.
type Options struct {
	// TLSVerify false talks plain HTTP, or HTTPS without checking the
	// certificate, to any registry (podman's --tls-verify=false). Loopback
	// and private addresses get plain HTTP anyway, as in podman.
	TLSVerify bool
	// Progress shows one bar per layer (pull) or one for the whole push.
	Progress layers.Progress
	// Keychain finds credentials; nil means authn.DefaultKeychain (docker's
	// config.json, then $REGISTRY_AUTH_FILE, then containers/auth.json).
	Keychain authn.Keychain
}

// ErrBadReference marks a malformed image reference.
var ErrBadReference = errors.New("invalid reference format")

// ParseReference parses an image reference as docker does: "busybox" is
// docker.io/library/busybox:latest; a reference with a digest keeps it and
// gets no tag. A "docker://" prefix (skopeo and podman's transport) is
// accepted.
func ParseReference(s string) (reference.Named, error) {
	s = strings.TrimPrefix(s, "docker://")
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		cause := strings.TrimPrefix(err.Error(), ErrBadReference.Error()+": ")
		if cause == ErrBadReference.Error() {
			return nil, fmt.Errorf("%w: %q", ErrBadReference, s)
		}
		return nil, fmt.Errorf("%w: %q: %s", ErrBadReference, s, cause)
	}
	if _, ok := named.(reference.Digested); ok {
		return named, nil
	}
	return reference.TagNameOnly(named), nil
}

// nameRef converts a parsed reference into go-containerregistry's form.
func (o Options) nameRef(r reference.Named) (name.Reference, error) {
	var opts []name.Option
	if !o.TLSVerify {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(r.String(), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadReference, r.String(), err)
	}
	return ref, nil
}

// remoteOptions are the options of every request: credentials, transport,
// this machine's platform, and a short retry budget so an unreachable
// registry is reported in about a second instead of after ggcr's default
// backoff.
func (o Options) remoteOptions(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(o.transport()),
		remote.WithPlatform(Platform()),
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
		remote.WithUserAgent("crun-lite"),
	}
}

// Platform is the platform pulls resolve a multi-arch index to.
func Platform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

func (o Options) transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if !o.TLSVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for --tls-verify=false
	}
	return t
}

// describe turns a registry error into one line with its cause: an image
// that is not there wraps layers.ErrImageNotFound, an unreachable registry
// says so.
func describe(what string, ref fmt.Stringer, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case hasCode(terr, transport.BlobUnknownErrorCode):
			return fmt.Errorf("%s %s: the registry lost a blob of the image: %s", what, ref, oneLine(err))
		case terr.StatusCode == http.StatusNotFound || hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode):
			return fmt.Errorf("%s %s: %w (the registry has no such repository or tag)", what, ref, layers.ErrImageNotFound)
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%s %s: access denied (%d): log in with crun-lite login", what, ref, terr.StatusCode)
		}
	}
	var nerr net.Error
	var oerr *net.OpError
	if errors.As(err, &oerr) || (errors.As(err, &nerr) && nerr.Timeout()) {
		return fmt.Errorf("%s %s: registry unreachable: %s", what, ref, oneLine(err))
	}
	return fmt.Errorf("%s %s: %s", what, ref, oneLine(err))
}

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// oneLine keeps an error message to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
