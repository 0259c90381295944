package runtime

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// portMap is one -p [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp].
type portMap struct {
	HostIP   string `json:"hostIP,omitempty"` // "": every address of the host
	HostPort uint16 `json:"hostPort"`
	CtrPort  uint16 `json:"containerPort"`
	Proto    string `json:"proto"` // tcp or udp
}

func (p portMap) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.CtrPort, p.Proto)
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

// conflicts tells whether p and q want the same host port.
func (p portMap) conflicts(q portMap) bool {
	return p.Proto == q.Proto && p.HostPort == q.HostPort &&
		(p.HostIP == "" || q.HostIP == "" || p.HostIP == q.HostIP)
}

// parsePublish reads the -p flags. Only IPv4 host addresses are published
// (the bridge network has no IPv6).
func parsePublish(in []string) ([]portMap, error) {
	var out []portMap
	for _, s := range in {
		p, err := parsePortMap(s)
		if err != nil {
			return nil, runnerErr("-p %s: %v", s, err)
		}
		for _, q := range out {
			if p.conflicts(q) {
				return nil, runnerErr("-p %s: host port %d/%s is published twice", s, p.HostPort, p.Proto)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePortMap(s string) (portMap, error) {
	const want = "want [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]"
	p := portMap{Proto: "tcp"}
	spec, proto, ok := strings.Cut(s, "/")
	if ok {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("protocol %q: want tcp or udp", proto)
		}
		p.Proto = proto
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
	case 3:
		ip := net.ParseIP(parts[0]).To4()
		if ip == nil {
			return p, fmt.Errorf("host address %q: want an IPv4 address (%s)", parts[0], want)
		}
		if !ip.Equal(net.IPv4zero) {
			p.HostIP = ip.String()
		}
		parts = parts[1:]
	default:
		return p, fmt.Errorf("%s", want)
	}
	var err error
	if p.HostPort, err = parsePort(parts[0]); err != nil {
		return p, fmt.Errorf("host port: %v (%s)", err, want)
	}
	if p.CtrPort, err = parsePort(parts[1]); err != nil {
		return p, fmt.Errorf("container port: %v (%s)", err, want)
	}
	return p, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// reservePorts binds every published host port and keeps the sockets for
// the container's life, as podman's conmon does: a port another program
// listens on is refused up front, and no program can take it later. The
// sockets never see a packet (the DNAT rules send the traffic on to the
// container before it reaches them).
func reservePorts(ports []portMap) ([]io.Closer, error) {
	var held []io.Closer
	for _, p := range ports {
		addr := net.JoinHostPort(p.HostIP, strconv.Itoa(int(p.HostPort)))
		var c io.Closer
		var err error
		if p.Proto == "udp" {
			c, err = net.ListenPacket("udp4", addr)
		} else {
			c, err = net.Listen("tcp4", addr)
		}
		if err != nil {
			closeAll(held)
			where := firstOf(p.HostIP, "0.0.0.0")
			return nil, runnerErr("-p %s: cannot publish %s port %d on %s: %v", p, p.Proto, p.HostPort, where, errnoOf(err))
		}
		held = append(held, c)
	}
	return held, nil
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}

// dnatRule sends traffic for p's host port to the container's address:
// `[ip daddr HOSTIP | fib daddr type local] meta l4proto P th dport HOSTPORT
// dnat to CIP:CPORT`, tagged with the container's ID.
func dnatRule(t *nftables.Table, ch *nftables.Chain, id string, ctr net.IP, p portMap) *nftables.Rule {
	var ex []expr.Any
	if p.HostIP != "" {
		ex = append(ex, ipDaddrIs(net.ParseIP(p.HostIP))...)
	} else {
		ex = append(ex,
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	ex = append(ex,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: ctr.To4()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.CtrPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
	return &nftables.Rule{Table: t, Chain: ch, Exprs: ex, UserData: ruleTag(id)}
}

func ipDaddrIs(ip net.IP) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip.To4()},
	}
}
