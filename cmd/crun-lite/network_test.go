package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// The bridge network tests give each test a bridge and a /24 of its own
// (CRUN_LITE_BRIDGE, CRUN_LITE_SUBNET), so parallel runs do not collide,
// and delete both at cleanup. Traffic goes only to loopback and to the
// containers' addresses inside that /24.

// netEnv is a store plus the test's own bridge network.
type netEnv struct {
	*env
	bridge, subnet, prefix string // prefix: "10.87.X."
}

func newNetEnv(t *testing.T) *netEnv {
	t.Helper()
	needContainers(t)
	b := make([]byte, 4)
	rand.Read(b)
	n := &netEnv{bridge: "clt" + hex.EncodeToString(b)}
	n.prefix = freePrefix(t, b[0])
	n.subnet = n.prefix + "0/24"
	// Registered first, so it runs last: after the containers are gone.
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(n.bridge); err == nil {
			netlink.LinkDel(l)
		}
		if c, err := nftables.New(); err == nil {
			c.DelTable(&nftables.Table{Name: "crun-lite-" + n.bridge, Family: nftables.TableFamilyIPv4})
			c.Flush()
		}
	})
	n.env = newEnv(t)
	n.env.extra = []string{"CRUN_LITE_BRIDGE=" + n.bridge, "CRUN_LITE_SUBNET=" + n.subnet}
	return n
}

// freePrefix picks 10.87.X.0/24 with no address of this host in it.
func freePrefix(t *testing.T, seed byte) string {
	addrs, _ := net.InterfaceAddrs()
	for i := 0; i < 250; i++ {
		x := 1 + (int(seed)+i)%250
		_, sub, _ := net.ParseCIDR(fmt.Sprintf("10.87.%d.0/24", x))
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && sub.Contains(ipn.IP) {
				used = true
			}
		}
		if !used {
			return fmt.Sprintf("10.87.%d.", x)
		}
	}
	t.Fatal("no free 10.87.X.0/24")
	return ""
}

// server runs a busybox httpd container serving page, named name, and
// returns its address (read from its /etc/hosts) and its front end.
func (n *netEnv) server(name, page string, extra ...string) (string, *exec.Cmd) {
	n.t.Helper()
	script := fmt.Sprintf(`mkdir /www && echo %s > /www/index.html && grep "$(hostname)" /etc/hosts && echo ready && exec busybox httpd -f -p 80 -h /www`, page)
	args := append(append([]string{"run", "--rm", "--network", "bridge", "--name", name, "--hostname", name}, extra...), "busybox", "sh", "-c", script)
	cmd := n.cmd(context.Background(), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	// Not the test's own stderr: nothing of a container may hold it open
	// past the test (WaitDelay bounds the wait for this pipe).
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() {
		if n.t.Failed() {
			n.t.Logf("stderr of %s: %s", name, stderr.String())
		}
		n.run("rm", "-f", name)
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var addr string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				n.t.Fatalf("container %s ended before it was ready", name)
			}
			if l == "ready" {
				return addr, cmd
			}
			if f := strings.Fields(l); len(f) == 2 && f[1] == name {
				addr = f[0]
			}
		case <-time.After(30 * time.Second):
			n.t.Fatalf("container %s not ready within 30s", name)
		}
	}
}

// stop removes a server container and waits for its front end.
func (n *netEnv) stop(name string, cmd *exec.Cmd) {
	n.t.Helper()
	if r := n.run("rm", "-f", name); r.code != 0 {
		n.t.Fatalf("rm -f %s: %v", name, r)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		n.t.Fatalf("front end of %s still running after rm -f", name)
	}
}

// checkNetClean fails unless no veth, nft rule or allocation of a
// container is left on the test's bridge network.
func (n *netEnv) checkNetClean() {
	n.t.Helper()
	if br, err := netlink.LinkByName(n.bridge); err == nil {
		// The bridge and its table are made together.
		if c, err := nftables.New(); err == nil {
			if _, err := c.ListTableOfFamily("crun-lite-"+n.bridge, nftables.TableFamilyIPv4); err != nil {
				n.t.Errorf("bridge %s has no table ip crun-lite-%s: %v", n.bridge, n.bridge, err)
			}
		}
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				n.t.Errorf("veth %s still on bridge %s", l.Attrs().Name, n.bridge)
			}
		}
	}
	if c, err := nftables.New(); err == nil {
		tb := &nftables.Table{Name: "crun-lite-" + n.bridge, Family: nftables.TableFamilyIPv4}
		for _, ch := range []string{"prerouting", "output"} {
			rules, _ := c.GetRules(tb, &nftables.Chain{Name: ch, Table: tb})
			if len(rules) > 0 {
				n.t.Errorf("%d rules left in chain %s of table ip crun-lite-%s", len(rules), ch, n.bridge)
			}
		}
	}
	var allocs struct{ Entries []json.RawMessage }
	if data, err := os.ReadFile(filepath.Join(n.store, "network", n.bridge+".json")); err == nil {
		json.Unmarshal(data, &allocs)
		if len(allocs.Entries) > 0 {
			n.t.Errorf("allocations left: %s", data)
		}
	}
}

// freePort is a TCP port of 127.0.0.1 that nobody listens on just now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestBridgeContainersReachEachOther(t *testing.T) {
	n := newNetEnv(t)
	addrA, cmdA := n.server("neta", "hello-from-a")
	if !strings.HasPrefix(addrA, n.prefix) {
		t.Fatalf("container a has address %q, want one in %s", addrA, n.subnet)
	}
	// (busybox-static's wget segfaults here: nc speaks the HTTP.) The
	// server may still be starting: a few tries.
	script := fmt.Sprintf(`grep "$(hostname)" /etc/hosts; for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s 80 >/tmp/out && break; sleep 0.2; done; tail -n1 /tmp/out`, addrA)
	r := n.run("run", "--rm", "--net", "bridge", "--hostname", "netb", "busybox", "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("container b: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || lines[1] != "hello-from-a" {
		t.Fatalf("container b got %q, want its hosts line and hello-from-a", r.out)
	}
	addrB := strings.Fields(lines[0])[0]
	if addrB == addrA || !strings.HasPrefix(addrB, n.prefix) {
		t.Errorf("container b has address %s, a has %s: want two different ones in %s", addrB, addrA, n.subnet)
	}
	n.stop("neta", cmdA)
	n.checkNetClean()
}

func TestBridgePublishedPort(t *testing.T) {
	n := newNetEnv(t)
	// One port on 127.0.0.1 only, one on every address of the host.
	port, allPort := freePort(t), freePort(t)
	_, cmd := n.server("web", "published-page", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "-p", fmt.Sprintf("%d:80", allPort))
	c := &http.Client{Timeout: 5 * time.Second}
	for _, p := range []int{port, allPort} {
		if body := getRetry(t, c, fmt.Sprintf("http://127.0.0.1:%d/", p)); body != "published-page" {
			t.Fatalf("published port %d served %q, want published-page", p, body)
		}
	}
	// While it runs, the port is the container's: nobody else may take it.
	if l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		l.Close()
		t.Errorf("host port %d was free while published", port)
	}
	n.stop("web", cmd)
	n.checkNetClean()
	if _, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Errorf("port %d still answers after the container is gone", port)
	}
}

func TestBridgeEtcFiles(t *testing.T) {
	n := newNetEnv(t)
	r := n.run("run", "--rm", "--network", "bridge", "--hostname", "etcbox", "busybox", "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf")
	if r.code != 0 {
		t.Fatalf("run: %v", r)
	}
	hosts, resolv, _ := strings.Cut(r.out, "---\n")
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost") {
		t.Errorf("/etc/hosts has no localhost line:\n%s", hosts)
	}
	found := false
	for _, line := range strings.Split(hosts, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "etcbox" {
			found = strings.HasPrefix(f[0], n.prefix)
		}
	}
	if !found {
		t.Errorf("/etc/hosts does not map etcbox to an address in %s:\n%s", n.subnet, hosts)
	}
	servers := 0
	for _, line := range strings.Split(resolv, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			servers++
			if ip := net.ParseIP(f[1]); ip == nil || ip.IsLoopback() {
				t.Errorf("resolv.conf has nameserver %s, which the container cannot reach", f[1])
			}
		}
	}
	if servers == 0 {
		t.Errorf("resolv.conf has no nameserver:\n%s", resolv)
	}
	n.checkNetClean()
}

func TestBridgePortInUse(t *testing.T) {
	n := newNetEnv(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	r := n.run("run", "--rm", "--network", "bridge", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "busybox", "true")
	if r.code != 125 {
		t.Fatalf("run with a port in use: %v, want exit 125", r)
	}
	if lines := strings.Split(strings.TrimSpace(r.err), "\n"); len(lines) != 1 || !strings.Contains(r.err, fmt.Sprint(port)) {
		t.Errorf("want a one-line error naming port %d, got %q", port, r.err)
	}
	if c := n.containerCount(); c != 0 {
		t.Errorf("%d containers left after the failed run", c)
	}
	n.checkNetClean()
}

func TestBridgeFlagErrors(t *testing.T) {
	n := newNetEnv(t)
	for _, args := range [][]string{
		{"run", "--rm", "-p", "8080:80", "busybox", "true"},
		{"run", "--rm", "--network", "bridge", "-p", "80", "busybox", "true"},
		{"run", "--rm", "--network", "bridge", "-p", "1:2/sctp", "busybox", "true"},
		{"run", "--rm", "--network", "wifi", "busybox", "true"},
	} {
		r := n.run(args...)
		if r.code != 125 || strings.Count(strings.TrimSpace(r.err), "\n") != 0 || r.err == "" {
			t.Errorf("crun-lite %v: %v, want exit 125 and a one-line error", args, r)
		}
	}
	if c := n.containerCount(); c != 0 {
		t.Errorf("%d containers left after refused runs", c)
	}
}

// getRetry fetches url, retrying for a few seconds while the container's
// server starts, and returns the body without surrounding space.
func getRetry(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var resp *http.Response
		if resp, err = c.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.TrimSpace(string(body))
		}
	}
	t.Fatalf("get %s: %v", url, err)
	return ""
}

func TestBridgeConcurrentRunsGetDistinctAddresses(t *testing.T) {
	n := newNetEnv(t)
	const runs = 4
	addrs := make(chan string, runs)
	errs := make(chan string, runs)
	for i := 0; i < runs; i++ {
		go func(i int) {
			name := fmt.Sprintf("par%d", i)
			// Each holds its address until all have one.
			r := n.run("run", "--rm", "--network", "bridge", "--hostname", name, "busybox", "sh", "-c", `grep "$(hostname)" /etc/hosts; sleep 1`)
			if r.code != 0 {
				errs <- fmt.Sprintf("%s: %v", name, r)
				return
			}
			addrs <- strings.Fields(r.out)[0]
		}(i)
	}
	seen := map[string]bool{}
	for i := 0; i < runs; i++ {
		select {
		case a := <-addrs:
			if seen[a] || !strings.HasPrefix(a, n.prefix) {
				t.Errorf("address %s given twice or outside %s", a, n.subnet)
			}
			seen[a] = true
		case e := <-errs:
			t.Error(e)
		case <-time.After(time.Minute):
			t.Fatal("concurrent runs did not finish")
		}
	}
	n.checkNetClean()
}

func TestBridgeFailedStartLeavesNothing(t *testing.T) {
	n := newNetEnv(t)
	port := freePort(t)
	r := n.run("run", "--rm", "--network", "bridge", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "busybox", "/no/such/command")
	if r.code != 127 {
		t.Fatalf("run of a missing command: %v, want exit 127", r)
	}
	n.checkNetClean()
	if l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("host port %d still held after the failed run: %v", port, err)
	} else {
		l.Close()
	}
}

func TestBridgeSupervisorKilled(t *testing.T) {
	n := newNetEnv(t)
	port := freePort(t)
	_, cmd := n.server("victim", "x", "-p", fmt.Sprintf("127.0.0.1:%d:80", port))
	var st struct{ Supervisor int }
	data, err := os.ReadFile(filepath.Join(n.containerDir("victim"), "state.json"))
	if err != nil || json.Unmarshal(data, &st) != nil || st.Supervisor == 0 {
		t.Fatalf("no supervisor pid in state.json: %v %s", err, data)
	}
	// A supervisor killed outright cannot tear down; the front end of a
	// --rm run (and rm, and the next allocation) cleans up after it.
	if err := syscallKill(st.Supervisor); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("front end still running after its supervisor was killed")
	}
	n.checkNetClean()
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

func TestBridgeRefusedRootless(t *testing.T) {
	needContainers(t)
	cred, home, _ := testUser(t)
	e := &env{t: t, store: filepath.Join(home, "store"), cred: cred, home: home}
	e.importImage(busyboxTar)
	t.Cleanup(e.cleanup)
	fuseMode(t, 0o666)
	r := e.run("run", "--rm", "--network", "bridge", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.err, "--network none or host") || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Errorf("rootless --network bridge: %v, want exit 125 and one line pointing at --network none|host", r)
	}
	if c := e.containerCount(); c != 0 {
		t.Errorf("%d containers left after the refused run", c)
	}
}

// A container reaches a published port through the gateway's address, as
// through any address of the host (the prerouting DNAT). Where
// br_netfilter is loaded (as here, with podman's and docker's setups) the
// bridge un-NATs the answer itself; without it, the answer comes back
// from the gateway only thanks to the "ct status dnat masquerade" rule,
// which this test then checks too.
func TestBridgePublishedPortFromContainer(t *testing.T) {
	n := newNetEnv(t)
	port := freePort(t)
	_, cmd := n.server("hairpin", "via-gateway", "-p", fmt.Sprintf("%d:80", port))
	script := fmt.Sprintf(`for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s1 %d >/tmp/out && break; sleep 0.2; done; tail -n1 /tmp/out`, n.prefix, port)
	r := n.run("run", "--rm", "--network", "bridge", "busybox", "sh", "-c", script)
	if r.code != 0 || strings.TrimSpace(r.out) != "via-gateway" {
		t.Fatalf("container to %s1:%d: %v, want via-gateway", n.prefix, port, r)
	}
	n.stop("hairpin", cmd)
	n.checkNetClean()
}

// A bridge crun-lite did not make (docker0, podman's) is never taken over.
func TestBridgeForeignBridgeRefused(t *testing.T) {
	n := newNetEnv(t)
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.bridge}}); err != nil {
		t.Fatal(err)
	}
	r := n.run("run", "--rm", "--network", "bridge", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.err, "not a bridge of crun-lite's") || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Errorf("run on a foreign bridge: %v, want exit 125 and one line", r)
	}
	br, err := netlink.LinkByName(n.bridge)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Errorf("the foreign bridge got addresses %v", addrs)
	}
	var allocs struct{ Entries []json.RawMessage }
	data, _ := os.ReadFile(filepath.Join(n.store, "network", n.bridge+".json"))
	if json.Unmarshal(data, &allocs); len(allocs.Entries) != 0 {
		t.Errorf("allocations left: %s", data)
	}
}

// syncBuffer is a strings.Builder safe for exec's copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
