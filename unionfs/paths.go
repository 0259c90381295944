package unionfs

import "strings"

// Paths inside the union: a rel is a path relative to the root of the
// union and of every layer ("" for the root, no leading or trailing "/").
// Files are opened by rel beneath a layer's dir descriptor (layerfs.go);
// the real paths built here (layerPath, upperPath) name them in messages
// and the trace only.

// joinRel is the rel of name in the directory dir (a rel).
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// parentRel is the relative path of rel's directory.
func parentRel(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// layerPath names rel in layer li for messages and the trace; it is never
// opened (layerfs.go).
func (u *unionFS) layerPath(li int, rel string) string {
	if rel == "" {
		return u.layers[li].path
	}
	return u.layers[li].path + "/" + rel
}

// upperPath is the real path of rel in the upper.
