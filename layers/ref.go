package layers

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// NormalizeName checks an image name and adds ":latest" when it has no tag.
// A name is REPO[:TAG]; the tag is what follows the last ':' after the last '/'
// (so "localhost:5000/app" has no tag).
func NormalizeName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty image name")
	}
	if strings.ContainsAny(name, " \t\n\r@") {
		return "", fmt.Errorf("image name %q: contains a space or '@'", name)
	}
	repo, tag := splitTag(name)
	if repo == "" || strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/") {
		return "", fmt.Errorf("image name %q: bad repository part", name)
	}
	if tag == "" {
		if strings.HasSuffix(name, ":") {
			return "", fmt.Errorf("image name %q: empty tag", name)
		}
		tag = "latest"
	}
	return repo + ":" + tag, nil
}

// splitTag splits REPO:TAG; tag is "" when there is none.
func splitTag(name string) (repo, tag string) {
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i+1:], "/") {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// find resolves a reference to one record: a name, a full digest or an ID prefix.
func (idx *index) find(ref string) (*imageRecord, error) {
	if strings.Contains(ref, "@") {
		if rec := idx.byRepoDigest(ref); rec != nil {
			return rec, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, ref)
	}
	if name, err := NormalizeName(ref); err == nil {
		if rec := idx.byName(name); rec != nil {
			return rec, nil
		}
	}
	hex := strings.TrimPrefix(ref, string(digest.SHA256)+":")
	if len(hex) < 4 || strings.Trim(hex, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, ref)
	}
	var found *imageRecord
	for _, rec := range idx.Images {
		if strings.HasPrefix(rec.ID.Encoded(), hex) {
			if found != nil {
				return nil, fmt.Errorf("image ID prefix %q is ambiguous", ref)
			}
			found = rec
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, ref)
	}
	return found, nil
}

// byName finds a name exactly, or else by its familiar form, so "busybox"
// finds "docker.io/library/busybox:latest" (as skopeo and docker write it)
// and the other way round.
func (idx *index) byName(name string) *imageRecord {
	for _, rec := range idx.Images {
		if contains(rec.Names, name) {
			return rec
		}
	}
	fam := familiarName(name)
	for _, rec := range idx.Images {
		for _, n := range rec.Names {
			if familiarName(n) == fam {
				return rec
			}
		}
	}
	return nil
}

// byRepoDigest finds REPO@DIGEST among the references images were pulled
// by, exactly or in familiar form.
func (idx *index) byRepoDigest(ref string) *imageRecord {
	for _, rec := range idx.Images {
		for _, rd := range rec.RepoDigests {
			if rd == ref || familiarName(rd) == familiarName(ref) {
				return rec
			}
		}
	}
	return nil
}

// familiarName strips docker's default registry and library namespace.
func familiarName(name string) string {
	for _, p := range []string{"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			return rest
		}
	}
	return name
}

// byID returns the record with this config digest, or nil.
func (idx *index) byID(id digest.Digest) *imageRecord {
	for _, rec := range idx.Images {
		if rec.ID == id {
			return rec
		}
	}
	return nil
}

// untag removes name from every record except keep.
func (idx *index) untag(name string, keep *imageRecord) {
	for _, rec := range idx.Images {
		if rec == keep {
			continue
		}
		out := rec.Names[:0]
		for _, n := range rec.Names {
			if n != name {
				out = append(out, n)
			}
		}
		rec.Names = out
	}
}
