package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Kind tells image containers (crun-lite run IMAGE) from OCI bundles.
type Kind string

const (
	KindImage  Kind = "image"
	KindBundle Kind = "bundle"
)

// Container is the record in <root>/containers/<id>/container.json: what
// the user asked for, fixed at creation. The OCI config next to it says
// how the process runs; state.json says how it is doing.
type Container struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Kind    Kind      `json:"kind"`
	Created time.Time `json:"created"`
	Command []string  `json:"command"`

	// Image containers.
	Image   string   `json:"image,omitempty"`   // the reference as given
	ImageID string   `json:"imageID,omitempty"` // config digest
	Lowers  []string `json:"lowers,omitempty"`  // layer dirs, topmost first
	// User is the -u / image User to resolve against the container's
	// /etc/passwd and /etc/group ("" keeps the config's numeric ids).
	User string `json:"user,omitempty"`
	// MkWorkdir creates the working dir when missing, as docker does.
	MkWorkdir bool `json:"mkWorkdir,omitempty"`
	Remove    bool `json:"remove,omitempty"` // --rm
	// Init runs the command under our reaper as PID 1 (--init).
	Init bool `json:"init,omitempty"`

	// Bundle containers.
	Bundle string `json:"bundle,omitempty"`

	// Rootless is set when the container runs in a user namespace; the maps
	// are the host side of it, kept so that rm can enter an equal namespace
	// to delete files owned by mapped ids.
	Rootless bool                   `json:"rootless,omitempty"`
	UIDMap   []specs.LinuxIDMapping `json:"uidMap,omitempty"`
	GIDMap   []specs.LinuxIDMapping `json:"gidMap,omitempty"`

	dir string
}

// Files and dirs of a container dir.
const (
	recordFile   = "container.json"
	configFile   = "config.json"
	stateFile    = "state.json"
	upperDir     = "upper"
	workDir      = "work"
	initDir      = "init"
	mergedDir    = "merged"
	execFifoName = "exec.fifo"
)

// Dir is the container's directory.
func (c *Container) Dir() string { return c.dir }

// Path joins name to the container's directory.
func (c *Container) Path(name string) string { return filepath.Join(c.dir, name) }

// Upper is the dir holding the container's writes (image containers).
func (c *Container) Upper() string { return c.Path(upperDir) }

// Rootfs is the directory the container pivots into: the union mount point
// for image containers, the bundle's root.path for bundles.
func (c *Container) rootfs(spec *specs.Spec) string {
	if c.Kind == KindImage {
		return c.Path(mergedDir)
	}
	p := spec.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.Bundle, p)
	}
	return p
}

func containersDir(root string) string { return filepath.Join(root, "containers") }

// newID returns 64 random hex digits, like docker's container IDs.
func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// checkName rejects names that cannot be a directory name or look like flags.
func checkName(name string) error {
	if !validName.MatchString(name) || len(name) > 128 {
		return fmt.Errorf("invalid container name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// lockContainers takes the flock that orders creations and removals, so two
// runs cannot take the same name.
func lockContainers(root string) (func(), error) {
	dir := containersDir(root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("containers dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// create makes the container's directory and writes its record. The name
// (default: the first 12 digits of the ID) must be unused.
func create(root string, c *Container) error {
	unlock, err := lockContainers(root)
	if err != nil {
		return err
	}
	defer unlock()
	if c.ID == "" {
		c.ID = newID()
	}
	if c.Name == "" {
		c.Name = c.ID[:12]
	}
	if err := checkName(c.Name); err != nil {
		return runnerErr("%v", err)
	}
	all, err := loadAll(root)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name == c.Name || o.ID == c.ID {
			return runnerErr("container name %q is already in use by container %s: remove it first (crun-lite rm %s)", c.Name, o.ID[:min(12, len(o.ID))], c.Name)
		}
	}
	c.dir = filepath.Join(containersDir(root), c.ID)
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return fmt.Errorf("create container dir %s: %w", c.dir, err)
	}
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	if err := c.save(); err != nil {
		os.RemoveAll(c.dir)
		return err
	}
	return nil
}

// save writes container.json.
func (c *Container) save() error {
	return writeJSON(c.Path(recordFile), c)
}

// writeJSON replaces path with v as indented JSON, atomically.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readJSON decodes path into v.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// loadDir reads the container record in dir.
func loadDir(dir string) (*Container, error) {
	c := &Container{}
	if err := readJSON(filepath.Join(dir, recordFile), c); err != nil {
		return nil, err
	}
	c.dir = dir
	return c, nil
}

// loadAll reads every container record under root, oldest first. Dirs
// without a record (a creation that crashed half-way) are skipped.
func loadAll(root string) ([]*Container, error) {
	ents, err := os.ReadDir(containersDir(root))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, err := loadDir(filepath.Join(containersDir(root), e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Find returns the container a reference names: its name, its full ID or a
// unique prefix of the ID.
func Find(root, ref string) (*Container, error) {
	all, err := loadAll(root)
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		if c.Name == ref || c.ID == ref {
			return c, nil
		}
	}
	var match []*Container
	if len(ref) >= 3 {
		for _, c := range all {
			if strings.HasPrefix(c.ID, ref) {
				match = append(match, c)
			}
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return nil, fmt.Errorf("container ID prefix %q is ambiguous: %d containers match", ref, len(match))
}

// loadConfig reads the OCI config the container runs.
func (c *Container) loadConfig() (*specs.Spec, error) {
	var spec specs.Spec
	if err := readJSON(c.Path(configFile), &spec); err != nil {
		return nil, fmt.Errorf("container %s: config: %w", c.Name, err)
	}
	return &spec, nil
}

// InitLowers returns the layer dirs a container's union has above its
// image's layers (the init dir with its /etc files), topmost first: a
// commit of its upper may find metadata-only copies' data there.
func InitLowers(root, ref string) ([]string, error) {
	c, err := Find(root, ref)
	if err != nil {
		return nil, err
	}
	return []string{c.Path(initDir)}, nil
}

// UpperAndImage returns the upper dir and image ID of an image container,
// what commit needs.
func UpperAndImage(root, ref string) (upper, image string, err error) {
	c, err := Find(root, ref)
	if err != nil {
		return "", "", err
	}
	if c.Kind != KindImage {
		return "", "", fmt.Errorf("container %s runs an OCI bundle, not an image: nothing to commit", c.Name)
	}
	return c.Upper(), c.ImageID, nil
}
