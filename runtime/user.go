package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ids is a resolved user: what setuid, setgid and setgroups get.
type ids struct {
	uid, gid   uint32
	additional []uint32
	home       string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// parseID reads a decimal uid or gid; ok is false when s is not a number.
func parseID(s string) (id uint32, ok bool, err error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		if strings.HasPrefix(s, "-") && strings.TrimLeft(s[1:], "0123456789") == "" && len(s) > 1 {
			return 0, true, fmt.Errorf("invalid id %q: must not be negative", s)
		}
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, true, fmt.Errorf("invalid id %q: out of range", s)
	}
	return uint32(n), true, nil
}

// readColonFile calls each for the fields of every non-comment line.
func readColonFile(path string, each func(f []string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			each(strings.Split(line, ":"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func readPasswd(path string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(path, func(f []string) {
		if len(f) < 7 {
			return
		}
		uid, ok1, err1 := parseID(f[2])
		gid, ok2, err2 := parseID(f[3])
		if ok1 && ok2 && err1 == nil && err2 == nil {
			out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
		}
	})
	return out, err
}

func readGroup(path string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(path, func(f []string) {
		if len(f) < 4 {
			return
		}
		gid, ok, err := parseID(f[2])
		if !ok || err != nil {
			return
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
		}
		out = append(out, groupEntry{name: f[0], gid: gid, members: members})
	})
	return out, err
}

// resolveUser turns a docker-style user spec (user, uid, user:group,
// uid:gid, ...) into ids using the passwd and group files, the way docker
// does: a name must exist, a number need not; the primary group defaults to
// the passwd entry's (0 without one); supplementary groups are those listing
// the user as a member.
func resolveUser(spec, passwdPath, groupPath string) (*ids, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return nil, fmt.Errorf("invalid user %q: want USER[:GROUP] or UID[:GID]", spec)
	}
	users, err := readPasswd(passwdPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", passwdPath, err)
	}
	u, err := findUser(userPart, users)
	if err != nil {
		return nil, err
	}
	groups, err := readGroup(groupPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", groupPath, err)
	}
	if hasGroup {
		if u.gid, err = findGroup(groupPart, groups); err != nil {
			return nil, err
		}
	}
	for _, g := range groups {
		for _, m := range g.members {
			if m == u.name && u.name != "" && g.gid != u.gid {
				u.additional = append(u.additional, g.gid)
			}
		}
	}
	return &ids{uid: u.uid, gid: u.gid, additional: u.additional, home: u.home}, nil
}

type foundUser struct {
	name       string
	uid, gid   uint32
	home       string
	additional []uint32
}

func findUser(s string, users []passwdEntry) (*foundUser, error) {
	id, numeric, err := parseID(s)
	if err != nil {
		return nil, fmt.Errorf("invalid user %q: %v", s, err)
	}
	for _, e := range users {
		if (numeric && e.uid == id) || (!numeric && e.name == s) {
			return &foundUser{name: e.name, uid: e.uid, gid: e.gid, home: e.home}, nil
		}
	}
	if !numeric {
		return nil, fmt.Errorf("unable to find user %s: no matching entries in passwd file", s)
	}
	return &foundUser{uid: id, home: "/"}, nil
}

func findGroup(s string, groups []groupEntry) (uint32, error) {
	id, numeric, err := parseID(s)
	if err != nil {
		return 0, fmt.Errorf("invalid group %q: %v", s, err)
	}
	if numeric {
		return id, nil
	}
	for _, g := range groups {
		if g.name == s {
			return g.gid, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", s)
}

// checkUserSyntax rejects user specs that can never resolve, before
// anything is started: empty parts and negative or huge numbers.
func checkUserSyntax(spec string) error {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return fmt.Errorf("invalid user %q: want USER[:GROUP] or UID[:GID]", spec)
	}
	for _, p := range []string{userPart, groupPart} {
		if _, _, err := parseID(p); err != nil {
			return fmt.Errorf("invalid user %q: %v", spec, err)
		}
	}
	return nil
}
