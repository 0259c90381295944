package runtime

import (
	"net"
	"os"
	"strings"
	"testing"
)

func TestParsePortMap(t *testing.T) {
	good := map[string]portMap{
		"8080:80":              {HostPort: 8080, CtrPort: 80, Proto: "tcp"},
		"127.0.0.1:8080:80":    {HostIP: "127.0.0.1", HostPort: 8080, CtrPort: 80, Proto: "tcp"},
		"0.0.0.0:53:53/udp":    {HostPort: 53, CtrPort: 53, Proto: "udp"},
		"10.0.0.1:1:65535/tcp": {HostIP: "10.0.0.1", HostPort: 1, CtrPort: 65535, Proto: "tcp"},
	}
	for in, want := range good {
		got, err := parsePortMap(in)
		if err != nil || got != want {
			t.Errorf("parsePortMap(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"80", "a:80", "0:80", "80:70000", "::1:80:80", "1:2/sctp", "host:1:2", "1:2:3:4", ""} {
		if p, err := parsePortMap(in); err == nil {
			t.Errorf("parsePortMap(%q) = %+v, want an error", in, p)
		}
	}
	if _, err := parsePublish([]string{"8080:80", "127.0.0.1:8080:81"}); err == nil {
		t.Error("the same host port published twice was accepted")
	}
	if _, err := parsePublish([]string{"8080:80", "8080:80/udp"}); err != nil {
		t.Errorf("tcp and udp on one port: %v", err)
	}
}

func TestFilterResolvConf(t *testing.T) {
	got := filterResolvConf("# by hand\nsearch example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\nnameserver 2001:db8::1\noptions edns0\n")
	want := "# by hand\nsearch example.org\nnameserver 192.0.2.53\noptions edns0\n"
	if got != want {
		t.Errorf("filtered resolv.conf:\n%q\nwant\n%q", got, want)
	}
	got = filterResolvConf("nameserver 127.0.0.1\n")
	if got != "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" {
		t.Errorf("only loopback nameservers gave %q, want docker's fallback", got)
	}
}

func TestNetAllocs(t *testing.T) {
	subnet, err := parseSubnet("10.87.9.0/30") // room for one container
	if err != nil {
		t.Fatal(err)
	}
	me, start := os.Getpid(), uint64(0)
	start, _, _ = procStat(me)
	a := &netAllocs{}
	none := func(netAllocEntry) {}
	p80 := []portMap{{HostPort: 8080, CtrPort: 80, Proto: "tcp"}}
	ip, err := a.allocate(subnet, netAllocEntry{ID: "aaaaaaaaaaaaa", Ports: p80, Sup: me, SupStart: start}, none)
	if err != nil || !ip.Equal(net.ParseIP("10.87.9.2")) {
		t.Fatalf("first allocation: %v %v, want 10.87.9.2", ip, err)
	}
	if _, err := a.allocate(subnet, netAllocEntry{ID: "bbbbbbbbbbbbb", Sup: me, SupStart: start}, none); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Errorf("a full subnet gave %v", err)
	}
	// A live container's host port is refused to another.
	a.Entries = append(a.Entries[:0], netAllocEntry{ID: "aaaaaaaaaaaaa", IP: "10.87.9.1", Ports: p80, Sup: me, SupStart: start})
	lo := []portMap{{HostIP: "127.0.0.1", HostPort: 8080, CtrPort: 81, Proto: "tcp"}}
	if _, err := a.allocate(subnet, netAllocEntry{ID: "ccccccccccccc", Ports: lo, Sup: me, SupStart: start}, none); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Errorf("a published port given twice: %v", err)
	}
	// An entry whose supervisor is gone is reclaimed.
	a.Entries = []netAllocEntry{{ID: "ddddddddddddd", IP: "10.87.9.2", Ports: p80, Sup: me, SupStart: start + 1}}
	var reclaimed []string
	ip, err = a.allocate(subnet, netAllocEntry{ID: "eeeeeeeeeeeee", Ports: p80, Sup: me, SupStart: start}, func(e netAllocEntry) { reclaimed = append(reclaimed, e.ID) })
	if err != nil || !ip.Equal(net.ParseIP("10.87.9.2")) || len(reclaimed) != 1 || reclaimed[0] != "ddddddddddddd" {
		t.Errorf("stale entry: got %v %v, reclaimed %v", ip, err, reclaimed)
	}
	if other, _ := parseSubnet("10.87.10.0/24"); other != nil {
		if _, err := a.allocate(other, netAllocEntry{ID: "fffffffffffff", Sup: me, SupStart: start}, none); err == nil {
			t.Error("a second subnet on one bridge was accepted")
		}
	}
}
