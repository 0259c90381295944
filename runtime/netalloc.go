package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The addresses of a bridge network are handed out from a small file in
// the store, <root>/network/<bridge>.json, read and written under an
// exclusive lock on <bridge>.lock, so that concurrent runs never get the
// same address or host port. An entry whose supervisor is gone (killed,
// crashed) is stale: the next allocation reclaims it, and its leftovers
// (host veth, nft rules) with it.

// netAllocs is the allocations file of one bridge.
type netAllocs struct {
	Subnet  string          `json:"subnet"`
	Entries []netAllocEntry `json:"entries"`
}

// netAllocEntry is one container's share of the bridge network.
type netAllocEntry struct {
	ID       string    `json:"id"` // container ID
	IP       string    `json:"ip"`
	Ports    []portMap `json:"ports,omitempty"`
	Sup      int       `json:"supervisor"` // pid of the supervisor that holds it
	SupStart uint64    `json:"supStart"`
}

func netDir(root string) string { return filepath.Join(root, "network") }

// withNetLock runs fn with the bridge's allocations, holding its lock; the
// allocations are written back when fn succeeds and says they changed.
func withNetLock(root, bridge string, fn func(a *netAllocs) (bool, error)) error {
	dir := netDir(root)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return runnerErr("network dir %s: %v", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, bridge+".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return runnerErr("network lock: %v", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return runnerErr("network lock %s: %v", lock.Name(), err)
	}
	path := filepath.Join(dir, bridge+".json")
	a := &netAllocs{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return runnerErr("read %s: %v", path, err)
	default:
		if err := json.Unmarshal(data, a); err != nil {
			return runnerErr("read %s: %v", path, err)
		}
	}
	changed, err := fn(a)
	if err != nil || !changed {
		return err
	}
	if err := writeJSON(path, a); err != nil {
		return runnerErr("%v", err)
	}
	return nil
}

// allocate gives container id the lowest free address of the subnet, after
// checking that none of its host ports is taken by another container.
// reclaim is called for each stale entry dropped on the way.
func (a *netAllocs) allocate(subnet *net.IPNet, e netAllocEntry, reclaim func(netAllocEntry)) (net.IP, error) {
	if a.Subnet == "" {
		a.Subnet = subnet.String()
	}
	if a.Subnet != subnet.String() {
		return nil, runnerErr("the bridge's allocations are for subnet %s, not %s (one bridge, one subnet)", a.Subnet, subnet)
	}
	live := a.Entries[:0]
	for _, old := range a.Entries {
		if old.ID == e.ID || !alive(old.Sup, old.SupStart) {
			reclaim(old)
			continue
		}
		live = append(live, old)
	}
	a.Entries = live
	used := map[string]bool{}
	for _, old := range a.Entries {
		used[old.IP] = true
		for _, p := range e.Ports {
			for _, q := range old.Ports {
				if p.conflicts(q) {
					return nil, runnerErr("-p %s: host port %d/%s is already published by container %s", p, p.HostPort, p.Proto, old.ID[:min(12, len(old.ID))])
				}
			}
		}
	}
	ip := freeAddress(subnet, used)
	if ip == nil {
		return nil, runnerErr("no free address left in %s", subnet)
	}
	e.IP = ip.String()
	a.Entries = append(a.Entries, e)
	return ip, nil
}

// release drops container id's entry; it tells whether there was one.
func (a *netAllocs) release(id string) (netAllocEntry, bool) {
	for i, e := range a.Entries {
		if e.ID == id {
			a.Entries = append(a.Entries[:i], a.Entries[i+1:]...)
			return e, true
		}
	}
	return netAllocEntry{}, false
}

// freeAddress is the lowest address of subnet past the gateway (.1) that is
// not used, leaving out the broadcast address.
func freeAddress(subnet *net.IPNet, used map[string]bool) net.IP {
	base := subnet.IP.To4()
	ones, bits := subnet.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for off := uint32(2); off < size-1; off++ {
		n := start + off
		ip := net.IPv4(byte(n>>24), byte(n>>16), byte(n>>8), byte(n)).To4()
		if !used[ip.String()] {
			return ip
		}
	}
	return nil
}

// gatewayOf is the first address of subnet, which the bridge holds.
func gatewayOf(subnet *net.IPNet) net.IP {
	gw := append(net.IP(nil), subnet.IP.To4()...)
	gw[3]++
	return gw
}

// parseSubnet reads an IPv4 CIDR with room for a gateway and a container.
func parseSubnet(s string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("subnet %q: want an IPv4 CIDR such as 10.87.0.0/24", s)
	}
	if ones, _ := n.Mask.Size(); ones > 30 || ones < 8 {
		return nil, fmt.Errorf("subnet %s: the prefix length must be 8 to 30", s)
	}
	n.IP = n.IP.To4()
	return n, nil
}
