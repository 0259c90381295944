package runtime

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// stageArg is the hidden first argument of a re-executed crun-lite.
const stageArg = "__crun-lite-stage"

// Stage names.
const (
	stageSupervise = "supervise"
	stageInit      = "init"
	stageRmTree    = "rmtree"
	stageImport    = "import"
	stageRmi       = "rmi"
	stageReap      = "reap" // run --init: PID 1 of the container
	stageExec      = "exec" // exec: a process joining a running container
)

// stageArgs tells a re-executed process what to do. It travels as JSON in
// argv, so it holds only small values; the container's config is read from
// its directory.
type stageArgs struct {
	Dir string `json:"dir"`
	// Detach: the front end leaves once the container is created (create);
	// the supervisor then outlives it.
	Detach bool `json:"detach,omitempty"`
	// WaitStart: the init waits on exec.fifo for `start` (create).
	WaitStart bool `json:"waitStart,omitempty"`
	// Console: fd 5 is a unix socket to send the pty master through.
	Console bool `json:"console,omitempty"`
	// Handoff: create of a bundle, runc's way: once the init waits for
	// start the supervisor leaves, the init goes on alone (see handoff.go).
	Handoff bool `json:"handoff,omitempty"`
	// NewKeyring: the init joins a new session keyring (runc's default).
	NewKeyring bool `json:"newKeyring,omitempty"`
	// GotGo: the init's parent, the --init reaper, read the "g" already.
	GotGo bool `json:"gotGo,omitempty"`
	// Remap: the front end writes the id maps with newuidmap after start;
	// the supervisor must exec itself once they are there to get its
	// capabilities in the new user namespace.
	Remap bool `json:"remap,omitempty"`
	// Mapped: the supervisor re-executed itself after Remap; the go-ahead
	// was already read.
	Mapped bool `json:"mapped,omitempty"`
	// Path is the tree rmtree deletes, or the archive import reads.
	Path string `json:"path,omitempty"`
	// Root and Name: import's store and image name.
	Root string   `json:"root,omitempty"`
	Name string   `json:"name,omitempty"`
	Refs []string `json:"refs,omitempty"` // rmi's images
	// Exec: the exec stage's descriptors.
	Exec *execFds `json:"exec,omitempty"`
}

// Fixed descriptors of the stage processes (after stdin, stdout, stderr).
const (
	fdControl = 3 // read: "g" (go on), "x" (exec now); EOF: the parent is gone
	fdStatus  = 4 // write: JSON messages to the parent
	fdConsole = 5 // unix socket for the pty master (Console)
)

// IsStage tells whether args (os.Args) are those of a re-executed stage
// process; the command line must then call RunStage before anything else.
func IsStage(args []string) bool { return len(args) >= 4 && args[1] == stageArg }

// RunStage runs the stage process args describes and returns its exit status.
func RunStage(args []string) int {
	var a stageArgs
	if err := json.Unmarshal([]byte(args[3]), &a); err != nil {
		fmt.Fprintf(os.Stderr, "crun-lite: bad stage arguments: %v\n", err)
		return ExitRunner
	}
	if a.Remap {
		return reexecMapped(args[2], a)
	}
	switch args[2] {
	case stageSupervise:
		return supervise(a)
	case stageInit:
		return initContainer(a)
	case stageRmTree:
		if err := os.RemoveAll(a.Path); err != nil {
			fmt.Fprintf(os.Stderr, "crun-lite: %v\n", err)
			return 1
		}
		return 0
	case stageImport:
		return importStage(a)
	case stageRmi:
		return rmiStage(a)
	case stageReap:
		return reap(a)
	case stageExec:
		return execStage(a)
	}
	fmt.Fprintf(os.Stderr, "crun-lite: unknown stage %q\n", args[2])
	return ExitRunner
}

// reexecMapped waits until the parent wrote our user namespace's maps with
// newuidmap, then executes us again: capabilities in the namespace come
// with an exec as its root, and our first exec happened before the maps
// existed.
func reexecMapped(stage string, a stageArgs) int {
	b := make([]byte, 1)
	if n, _ := os.NewFile(fdControl, "control").Read(b); n != 1 {
		return ExitRunner // the parent is gone
	}
	a.Remap, a.Mapped = false, true
	argv := stageCommand(stage, a)
	err := syscall.Exec(argv[0], argv, stageEnv())
	m := fmt.Sprintf("re-exec in the user namespace: %v", err)
	if stage == stageSupervise {
		(&reporter{w: os.NewFile(fdStatus, "status")}).send(msg{Type: msgError, Code: ExitRunner, Msg: m})
	} else {
		fmt.Fprintln(os.Stderr, "crun-lite:", m)
	}
	return ExitRunner
}

// stageCommand is the argv of a re-execution of ourselves.
func stageCommand(stage string, a stageArgs) []string {
	data, _ := json.Marshal(a)
	return []string{"/proc/self/exe", stageArg, stage, string(data)}
}

// msg is one message on a status pipe, one JSON object per line.
type msg struct {
	Type string `json:"type"` // see the msg* constants
	Pid  int    `json:"pid,omitempty"`
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

const (
	msgStarted = "started" // supervisor: the init runs as Pid
	msgCreated = "created" // init set up, waiting for start (create)
	msgExec    = "exec"    // init: about to exec, waiting for "x"
	msgRunning = "running" // supervisor: the command runs
	msgWarn    = "warn"    // a warning line for the user
	msgError   = "error"   // a failure: Code and Msg
	msgExit    = "exit"    // supervisor: the container ended with Code
)

// reporter writes messages to a status pipe; safe for concurrent use. Write
// errors are ignored: a parent that left no longer listens.
type reporter struct {
	mu sync.Mutex
	w  io.Writer
}

func (r *reporter) send(m msg) {
	if r == nil || r.w == nil {
		return
	}
	data, _ := json.Marshal(m)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Write(append(data, '\n'))
}

func (r *reporter) warn(s string) { r.send(msg{Type: msgWarn, Msg: s}) }

// readMsgs sends every message read from r to ch and closes ch at EOF.
func readMsgs(r io.Reader, ch chan<- msg) {
	defer close(ch)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m msg
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			ch <- m
		}
	}
}
