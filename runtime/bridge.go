package runtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The bridge network (--network bridge), as docker's default network:
//
//   - a Linux bridge (crunlite0) holding the gateway address .1 of a private
//     subnet; it stays when its containers are gone, as docker0 does;
//   - per container, a veth pair: the host end on the bridge, the other end
//     created right in the container's network namespace as eth0, with the
//     next free address of the subnet and a default route via the gateway;
//   - an nftables table named after the bridge (ip crun-lite-crunlite0) with outbound
//     masquerading for the subnet and, per container, DNAT rules for its
//     published ports in prerouting and output (the host's own connections).
//     Connections from the host to 127.0.0.1:HOSTPORT leave with a loopback
//     source: as CNI's portmap and netavark do, route_localnet is set on the
//     bridge and such traffic is masqueraded to the gateway address; a guard
//     rule drops what the containers send to 127.0.0.0/8, which
//     route_localnet would otherwise let through to the host's loopback
//     services (CVE-2020-8558).
//
// Everything of one container (veth, rules, allocation, reserved ports) is
// set up by its supervisor and torn down by it when the container ends or
// its setup fails; rm and the next allocation clean up after a supervisor
// that was killed.

// Defaults of the bridge network. The subnet is outside docker's default
// pools (172.17-31.x, 192.168.x) and podman's (10.88.0.0/16, and
// 10.89.0.0/16 up for `podman network create`).
const (
	defaultBridge = "crunlite0"
	defaultSubnet = "10.87.0.0/24"
	// Tests (and users who need another range) choose the bridge and
	// subnet with these; they are read when the container is created.
	bridgeEnv = "CRUN_LITE_BRIDGE"
	subnetEnv = "CRUN_LITE_SUBNET"
)

const netConfigFile = "network.json"

// netConfig is a bridge container's network, fixed at creation.
type netConfig struct {
	Bridge string    `json:"bridge"`
	Subnet string    `json:"subnet"`
	Ports  []portMap `json:"ports,omitempty"`
}

var bridgeName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,14}$`)

// newNetConfig checks the bridge flags of a run.
func newNetConfig(publish []string) (*netConfig, error) {
	cfg := &netConfig{Bridge: firstOf(os.Getenv(bridgeEnv), defaultBridge), Subnet: firstOf(os.Getenv(subnetEnv), defaultSubnet)}
	if !bridgeName.MatchString(cfg.Bridge) {
		return nil, runnerErr("%s=%s: want an interface name of letters, digits, _ and - (at most 15)", bridgeEnv, cfg.Bridge)
	}
	if _, err := parseSubnet(cfg.Subnet); err != nil {
		return nil, runnerErr("%s: %v", subnetEnv, err)
	}
	var err error
	cfg.Ports, err = parsePublish(publish)
	return cfg, err
}

// containerNet is the supervisor's handle on its container's bridge network.
type containerNet struct {
	cfg    netConfig
	root   string
	id     string
	subnet *net.IPNet
	ip     net.IP
	held   []io.Closer // reserved host ports
}

// storeRootOf is the store of a container dir (<root>/containers/<id>).
func storeRootOf(c *Container) string { return filepath.Dir(filepath.Dir(c.dir)) }

// prepareNetwork allocates the container's address, makes sure the bridge
// and its table exist, adds the DNAT rules, reserves the host ports and
// writes /etc/hosts and /etc/resolv.conf into the init layer. It returns
// nil for a container without a bridge network.
func prepareNetwork(c *Container) (*containerNet, error) {
	var cfg netConfig
	if err := readJSON(c.Path(netConfigFile), &cfg); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, runnerErr("network config: %v", err)
	}
	subnet, err := parseSubnet(cfg.Subnet)
	if err != nil || !bridgeName.MatchString(cfg.Bridge) {
		return nil, runnerErr("network config %s: bad bridge or subnet", c.Path(netConfigFile))
	}
	n := &containerNet{cfg: cfg, root: storeRootOf(c), id: c.ID, subnet: subnet}
	if n.held, err = reservePorts(cfg.Ports); err != nil {
		return nil, err
	}
	err = withNetLock(n.root, cfg.Bridge, func(a *netAllocs) (bool, error) {
		// The entry lives as long as we (the supervisor) do.
		start, _, _ := procStat(os.Getpid())
		e := netAllocEntry{ID: c.ID, Ports: cfg.Ports, Sup: os.Getpid(), SupStart: start}
		ip, err := a.allocate(subnet, e, n.reclaim)
		if err != nil {
			return false, err
		}
		n.ip = ip
		if err := n.setupHost(); err != nil {
			a.release(c.ID)
			n.removeRules()
			return true, err
		}
		return true, nil
	})
	if err == nil {
		err = writeNetEtc(c, n.ip)
	}
	if err != nil {
		n.teardown()
		return nil, err
	}
	return n, nil
}

// setupHost makes the bridge and the table, and adds this container's
// DNAT rules. It runs under the network lock.
func (n *containerNet) setupHost() error {
	br, err := ensureBridge(n.cfg.Bridge, n.subnet)
	if err != nil {
		return err
	}
	for _, s := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/" + br.Attrs().Name + "/route_localnet"} {
		if err := os.WriteFile(s, []byte("1"), 0o644); err != nil {
			return runnerErr("bridge network: %v", err)
		}
	}
	nft, err := nftables.New()
	if err != nil {
		return runnerErr("nftables: %v", err)
	}
	t, chains, err := ensureTable(nft, n.cfg.Bridge, n.subnet)
	if err != nil {
		return err
	}
	for _, p := range n.cfg.Ports {
		nft.AddRule(dnatRule(t, chains["prerouting"], n.id, n.ip, p))
		nft.AddRule(dnatRule(t, chains["output"], n.id, n.ip, p))
	}
	if err := nft.Flush(); err != nil {
		return runnerErr("nftables: add the port rules of %s: %v", n.id[:12], err)
	}
	return nil
}

// attach creates the container's veth pair: the host end on the bridge,
// the other end as eth0 in the network namespace of pid, configured.
func (n *containerNet) attach(pid int) error {
	if n == nil {
		return nil
	}
	br, err := netlink.LinkByName(n.cfg.Bridge)
	if err != nil {
		return runnerErr("bridge %s: %v", n.cfg.Bridge, err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostVethName(n.id), MasterIndex: br.Attrs().Index, MTU: br.Attrs().MTU},
		PeerName: "eth0", PeerNamespace: netlink.NsPid(pid)}
	if err := netlink.LinkAdd(veth); err != nil {
		return runnerErr("create the veth pair %s: %v", veth.Name, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return runnerErr("set %s up: %v", veth.Name, err)
	}
	if err := n.configureInside(pid); err != nil {
		return runnerErr("configure the container's eth0: %v", err)
	}
	return nil
}

// configureInside gives eth0 in pid's network namespace its address and
// the default route.
func (n *containerNet) configureInside(pid int) error {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.ip, Mask: n.subnet.Mask}}
	if err := h.AddrAdd(eth, addr); err != nil {
		return fmt.Errorf("address %s: %w", addr.IPNet, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set eth0 up: %w", err)
	}
	gw := gatewayOf(n.subnet)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw}); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

// teardown undoes everything of the container: rules, veth, allocation
// and reserved ports. It is safe on a partly set up network.
func (n *containerNet) teardown() {
	if n == nil {
		return
	}
	withNetLock(n.root, n.cfg.Bridge, func(a *netAllocs) (bool, error) {
		e, ok := a.release(n.id)
		if !ok {
			e = netAllocEntry{ID: n.id}
		}
		n.reclaim(e)
		return ok, nil
	})
	closeAll(n.held)
	n.held = nil
}

// reclaim removes what an entry's container left on the host.
func (n *containerNet) reclaim(e netAllocEntry) {
	removeContainerNet(n.cfg.Bridge, e.ID)
}

func (n *containerNet) removeRules() { removeContainerRules(n.cfg.Bridge, n.id) }

// removeContainerNet deletes container id's host veth (its peer goes
// with it) and its rules in the bridge's table.
func removeContainerNet(bridge, id string) {
	if l, err := netlink.LinkByName(hostVethName(id)); err == nil {
		netlink.LinkDel(l)
	}
	removeContainerRules(bridge, id)
}

func removeContainerRules(bridge, id string) {
	nft, err := nftables.New()
	if err != nil {
		return
	}
	t := &nftables.Table{Name: tableName(bridge), Family: nftables.TableFamilyIPv4}
	tag := string(ruleTag(id))
	for _, name := range []string{"prerouting", "output"} {
		rules, err := nft.GetRules(t, &nftables.Chain{Name: name, Table: t})
		if err != nil {
			continue
		}
		for _, r := range rules {
			if string(r.UserData) == tag {
				nft.DelRule(r)
			}
		}
	}
	nft.Flush()
}

// CleanupNetwork removes what a container whose supervisor is gone left
// of its bridge network (rm calls it; normally there is nothing).
func cleanupNetwork(c *Container) {
	var cfg netConfig
	if readJSON(c.Path(netConfigFile), &cfg) != nil || !bridgeName.MatchString(cfg.Bridge) {
		return
	}
	withNetLock(storeRootOf(c), cfg.Bridge, func(a *netAllocs) (bool, error) {
		_, ok := a.release(c.ID)
		removeContainerNet(cfg.Bridge, c.ID)
		return ok, nil
	})
}

// hostVethName is the host end of a container's veth: vcl + 12 ID digits
// (15 characters, the kernel's limit).
func hostVethName(id string) string { return "vcl" + id[:12] }

// ruleTag marks the rules of one container (shown by nft as a comment).
func ruleTag(id string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, "crun-lite:"+id)
}

// bridgeAlias marks the bridges crun-lite made: another's bridge (docker0,
// podman's) is never taken over.
const bridgeAlias = "crun-lite"

// tableName is the nftables table (family ip) of a bridge network; the
// prefix keeps it clear of other tables (iptables-nft's "nat", "filter").
func tableName(bridge string) string { return "crun-lite-" + bridge }

// ensureBridge returns the bridge, creating it with the gateway address
// when missing. A new bridge's subnet must not overlap a route of the
// host's, or the containers would cut the host off from that network.
func ensureBridge(name string, subnet *net.IPNet) (netlink.Link, error) {
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: gatewayOf(subnet), Mask: subnet.Mask}}
	br, err := netlink.LinkByName(name)
	if err == nil {
		if br.Type() != "bridge" || br.Attrs().Alias != bridgeAlias {
			return nil, runnerErr("bridge network: the interface %s exists and is not a bridge of crun-lite's (choose another with %s)", name, bridgeEnv)
		}
	} else {
		if err := checkSubnetFree(subnet); err != nil {
			return nil, err
		}
		br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := netlink.LinkAdd(br); err != nil {
			return nil, runnerErr("create bridge %s: %v", name, err)
		}
		if br, err = netlink.LinkByName(name); err != nil {
			return nil, runnerErr("bridge %s: %v", name, err)
		}
		if err := netlink.LinkSetAlias(br, bridgeAlias); err != nil {
			netlink.LinkDel(br)
			return nil, runnerErr("bridge %s: set its alias: %v", name, err)
		}
	}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return nil, runnerErr("bridge %s: address %s: %v", name, gw.IPNet, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, runnerErr("set bridge %s up: %v", name, err)
	}
	return br, nil
}

// checkSubnetFree refuses a subnet that overlaps a route of the host.
func checkSubnetFree(subnet *net.IPNet) error {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return runnerErr("list routes: %v", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			continue
		}
		if r.Dst.Contains(subnet.IP) || subnet.Contains(r.Dst.IP) {
			return runnerErr("bridge network: subnet %s overlaps the host's route to %s (choose another with %s)", subnet, r.Dst, subnetEnv)
		}
	}
	return nil
}

// ensureTable makes the bridge's table with its chains and network-wide
// rules when it does not exist (one atomic batch), and returns its chains.
func ensureTable(nft *nftables.Conn, bridge string, subnet *net.IPNet) (*nftables.Table, map[string]*nftables.Chain, error) {
	t := &nftables.Table{Name: tableName(bridge), Family: nftables.TableFamilyIPv4}
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio}
	}
	chains := map[string]*nftables.Chain{
		"prerouting":  nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		"output":      nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		"postrouting": nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		"guard": {Name: "guard", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw},
	}
	if _, err := nft.ListTableOfFamily(t.Name, nftables.TableFamilyIPv4); err == nil {
		return t, chains, nil
	}
	nft.AddTable(t)
	for _, name := range []string{"guard", "prerouting", "output", "postrouting"} {
		nft.AddChain(chains[name])
	}
	loopback := &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}
	add := func(ch string, ex ...expr.Any) {
		nft.AddRule(&nftables.Rule{Table: t, Chain: chains[ch], Exprs: ex})
	}
	// iifname BRIDGE ip daddr 127.0.0.0/8 drop
	add("guard", append(append(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge), ipIn(16, loopback)...),
		&expr.Verdict{Kind: expr.VerdictDrop})...)
	// ip saddr SUBNET oifname != BRIDGE masquerade: outbound NAT.
	add("postrouting", append(append(ipIn(12, subnet), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge)...), &expr.Masq{})...)
	// oifname BRIDGE ip saddr 127.0.0.0/8 masquerade: the host's own
	// connections to 127.0.0.1:HOSTPORT, DNATed to a container.
	add("postrouting", append(append(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge), ipIn(12, loopback)...), &expr.Masq{})...)
	// oifname BRIDGE ip saddr SUBNET ct status dnat masquerade: a
	// container that reaches a published port through a host address
	// (the gateway's, say) must get the answer from that address, not
	// straight from the container behind it.
	add("postrouting", append(append(append(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge), ipIn(12, subnet)...),
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}), &expr.Masq{})...)
	if err := nft.Flush(); err != nil {
		return nil, nil, runnerErr("nftables: create table ip %s: %v", t.Name, err)
	}
	return t, chains, nil
}

// ctStatusDNAT is the kernel's IPS_DST_NAT bit of a connection's status.
const ctStatusDNAT = 1 << 5

// ifname compares the input or output interface name.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: b}}
}

// ipIn matches the IPv4 address at offset (12 source, 16 destination) of
// the network header against n.
func ipIn(offset uint32, n *net.IPNet) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(n.Mask), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.IP.To4()},
	}
}

// writeNetEtc writes the container's /etc/hosts (its address for its host
// name) and /etc/resolv.conf into the init layer, below the upper dir.
func writeNetEtc(c *Container, ip net.IP) error {
	hostname := ""
	if spec, err := c.loadConfig(); err == nil {
		hostname = spec.Hostname
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" {
		hosts += ip.String() + "\t" + hostname + "\n"
	}
	etc := c.Path(filepath.Join(initDir, "etc"))
	files := map[string]string{"hosts": hosts, "resolv.conf": containerResolvConf()}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return runnerErr("write the container's /etc/%s: %v", name, err)
		}
	}
	return nil
}

// containerResolvConf is the host's resolv.conf as docker gives it to a
// bridge container: loopback nameservers (a local resolver the container
// cannot reach) and IPv6 ones (no IPv6 on the bridge) are dropped; with
// systemd-resolved's stub, its upstream file is used; with no nameserver
// left, Google's public ones are put in, as docker does.
func containerResolvConf() string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		data = nil
	}
	if onlyLoopback(string(data)) {
		if up, err := os.ReadFile("/run/systemd/resolve/resolv.conf"); err == nil {
			data = up
		}
	}
	return filterResolvConf(string(data))
}

// filterResolvConf drops the nameservers a bridge container cannot use
// and falls back on docker's defaults when none is left.
func filterResolvConf(data string) string {
	var out []string
	servers := 0
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			ip := net.ParseIP(f[1])
			if ip == nil || ip.IsLoopback() || ip.To4() == nil {
				continue
			}
			servers++
		}
		out = append(out, line)
	}
	text := strings.TrimRight(strings.Join(out, "\n"), "\n")
	if servers == 0 {
		text += "\nnameserver 8.8.8.8\nnameserver 8.8.4.4"
	}
	return strings.TrimLeft(text, "\n") + "\n"
}

// onlyLoopback tells whether every nameserver of a resolv.conf is local.
func onlyLoopback(conf string) bool {
	any := false
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip == nil || !ip.IsLoopback() {
				return false
			}
			any = true
		}
	}
	return any
}

// bridgeConfigOf checks --network bridge and -p for a run; nil for the
// other networks.
func bridgeConfigOf(c *Container, o RunOptions) (*netConfig, error) {
	if o.Net != "bridge" {
		return nil, nil
	}
	if c.Rootless {
		return nil, runnerErr("--network bridge needs root (rootless containers have --network none or host)")
	}
	return newNetConfig(o.Publish)
}
