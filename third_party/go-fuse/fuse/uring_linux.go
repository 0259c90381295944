// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

// FUSE over io_uring (Linux 6.14+, protocol 7.42). See the kernel's
// Documentation/filesystems/fuse-io-uring.rst.
//
// After INIT has negotiated CAP_OVER_IO_URING, the daemon registers
// ring entries for every queue (one queue per possible CPU) by
// sending IORING_OP_URING_CMD commands on the /dev/fuse fd. Each
// entry is a header area (struct fuse_uring_req_header) and a payload
// buffer. Once every queue has an entry, the kernel stops queueing
// requests for read(2) on /dev/fuse (except FORGET and INTERRUPT)
// and instead copies each request into an entry of the queue of the
// CPU the calling task runs on, completing that entry's command. The
// daemon writes the reply into the same entry and sends
// COMMIT_AND_FETCH, which hands in the reply and waits for the next
// request in one step.
//
// Here each queue has uringWorkersPerQueue workers. A worker is a
// goroutine locked to an OS thread pinned to the queue's CPU, with its
// own small ring holding one entry. It handles its request on that
// thread and sends the reply with the next wait, so a request costs
// one io_uring_enter(2) and no thread hand-off.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// From include/uapi/linux/io_uring.h.
const (
	_IORING_SETUP_SQE128        = 1 << 10
	_IORING_SETUP_SINGLE_ISSUER = 1 << 12
	_IORING_SETUP_DEFER_TASKRUN = 1 << 13

	_IORING_FEAT_SINGLE_MMAP = 1 << 0

	_IORING_OFF_SQ_RING = 0
	_IORING_OFF_CQ_RING = 0x8000000
	_IORING_OFF_SQES    = 0x10000000

	_IORING_ENTER_GETEVENTS = 1 << 0

	_IORING_OP_URING_CMD = 46

	sizeOfSQE128 = 128
	sizeOfCQE    = 16
	// Offset of the command area (struct fuse_uring_cmd_req) in an SQE.
	sqeCmdOffset = 48
)

// From include/uapi/linux/fuse.h.
const (
	_FUSE_IO_URING_CMD_REGISTER         = 1
	_FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2

	// struct fuse_uring_req_header: in_out[128], op_in[128],
	// ring_ent_in_out.
	uringOpInOffset  = 128
	uringOpInSize    = 128
	uringEntInOutOff = 256
	uringHeaderSize  = uringEntInOutOff + int(unsafe.Sizeof(uringEntInOut{}))
)

// uringWorkersPerQueue is the number of ring entries, each with its
// own thread, per queue. More than one lets a request from a CPU be
// served while another one from the same CPU blocks in the
// filesystem.
const uringWorkersPerQueue = 2

// struct fuse_uring_ent_in_out
type uringEntInOut struct {
	Flags     uint64
	CommitID  uint64
	PayloadSz uint32
	Padding   uint32
	Reserved  uint64
}

// struct fuse_uring_cmd_req
type uringCmdReq struct {
	Flags    uint64
	CommitID uint64
	QID      uint16
	Padding  [6]uint8
}

type ioSqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type ioCqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type ioUringParams struct {
	SqEntries, CqEntries, Flags, SqThreadCPU, SqThreadIdle, Features, WqFd uint32
	Resv                                                                   [3]uint32
	SqOff                                                                  ioSqringOffsets
	CqOff                                                                  ioCqringOffsets
}

type ioUringCQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// ringQueueCount is the number of queues the kernel expects: one per
// possible CPU (num_possible_cpus()).
func ringQueueCount() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("parse possible CPUs %q: %v", b, err)
		}
		z := a
		if isRange {
			if z, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("parse possible CPUs %q: %v", b, err)
			}
		}
		n += z - a + 1
	}
	return n, nil
}

// startIoUring registers the ring entries after INIT. The kernel
// switches to the rings once every queue has an entry; if a queue got
// none, requests keep going through /dev/fuse.
func (ms *Server) startIoUring() {
	u := &ms.uring
	u.start = make(chan struct{})
	if !ms.opts.EnableIoUring {
		u.err = errors.New("io_uring: not enabled (MountOptions.EnableIoUring)")
		return
	}
	if ms.negotiatedFlags&CAP_OVER_IO_URING == 0 {
		u.err = errors.New("io_uring: the kernel did not offer FUSE_OVER_IO_URING (needs Linux 6.14+ and fuse module parameter enable_uring=Y)")
		return
	}
	queues, err := ringQueueCount()
	if err != nil {
		u.err = fmt.Errorf("io_uring: %v", err)
		return
	}
	var fd int
	if err := ms.fuseFD.withFD(func(f int) { fd = f }); err != nil {
		u.err = fmt.Errorf("io_uring: %v", err)
		return
	}
	// max_payload_sz of fs/fuse/dev_uring.c: the kernel refuses
	// smaller payload buffers.
	maxPages := (ms.opts.MaxWrite-1)/syscall.Getpagesize() + 1
	payload := max(_FUSE_MIN_READ_BUFFER, ms.opts.MaxWrite, maxPages*syscall.Getpagesize())

	n := queues * uringWorkersPerQueue
	results := make(chan uringRegistration, n)
	ms.fuseFD.loops.Add(n)
	for q := 0; q < queues; q++ {
		for i := 0; i < uringWorkersPerQueue; i++ {
			w := &uringWorker{server: ms, devFD: fd, qid: q, payloadSize: payload}
			go w.run(results)
		}
	}
	registered := make([]bool, queues)
	var failed error
	for i := 0; i < n; i++ {
		r := <-results
		if r.err == nil {
			registered[r.qid] = true
		} else if failed == nil {
			failed = r.err
		}
	}
	for q, ok := range registered {
		if !ok {
			// Workers that registered keep their entries until the
			// mount goes away (the kernel has no unregister), unused.
			u.err = fmt.Errorf("%v; queue %d has no entry, serving requests over /dev/fuse", failed, q)
			ms.opts.Logger.Print(u.err)
			return
		}
	}
	if failed != nil {
		ms.opts.Logger.Printf("%v; every queue has an entry all the same", failed)
	}
}

// uringRegistration is a worker's registration result.
type uringRegistration struct {
	qid int
	err error
}

// uringWorker owns one ring with one entry of one queue.
type uringWorker struct {
	server      *Server
	devFD       int
	qid         int
	payloadSize int

	ringFD int
	sqRing []byte
	cqRing []byte
	sqes   []byte

	sqHead, sqTail, sqMask, sqArray *uint32
	cqHead, cqTail, cqMask          *uint32
	cqes                            unsafe.Pointer

	// mem holds the entry: the header at 0, its iovecs after it,
	// the payload from the second page on.
	mem     []byte
	header  []byte
	payload []byte

	req requestAlloc
}

// run is the worker goroutine. It reports the registration result on
// registered, then serves requests until the connection goes away.
func (w *uringWorker) run(registered chan<- uringRegistration) {
	defer w.server.fuseFD.loops.Done()
	// The thread is never unlocked: it exits with the goroutine,
	// taking its CPU affinity with it.
	runtime.LockOSThread()
	// Serve requests on the CPU they come from. Not fatal: the CPU
	// may be offline.
	var set unix.CPUSet
	set.Set(w.qid)
	unix.SchedSetaffinity(0, &set)

	if err := w.setup(); err != nil {
		w.close()
		registered <- uringRegistration{w.qid, fmt.Errorf("io_uring: queue %d: %v", w.qid, err)}
		return
	}
	err := w.register()
	registered <- uringRegistration{w.qid, err}
	if err != nil {
		// Closing the ring cancels an entry that did register.
		w.close()
		return
	}
	<-w.server.uring.start
	w.serve()
	w.close()
}

func (w *uringWorker) setup() error {
	w.req.cancel = make(chan struct{})
	page := syscall.Getpagesize()
	mem, err := unix.Mmap(-1, 0, page+w.payloadSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap buffers: %v", err)
	}
	w.mem = mem
	w.header = mem[:uringHeaderSize]
	w.payload = mem[page:]

	// SINGLE_ISSUER|DEFER_TASKRUN: the kernel copies requests in
	// only while we wait in io_uring_enter, never interrupting
	// the filesystem code running on this thread. Older kernels
	// lack them.
	var p ioUringParams
	for _, flags := range []uint32{
		_IORING_SETUP_SQE128 | _IORING_SETUP_SINGLE_ISSUER | _IORING_SETUP_DEFER_TASKRUN,
		_IORING_SETUP_SQE128,
	} {
		p = ioUringParams{Flags: flags}
		fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 2, uintptr(unsafe.Pointer(&p)), 0)
		if errno == 0 {
			w.ringFD = int(fd)
			break
		}
		w.ringFD = -1
		if errno != syscall.EINVAL {
			return fmt.Errorf("io_uring_setup: %v", errno)
		}
	}
	if w.ringFD < 0 {
		return fmt.Errorf("io_uring_setup: %v", syscall.EINVAL)
	}
	if p.Features&_IORING_FEAT_SINGLE_MMAP == 0 {
		return errors.New("io_uring_setup: kernel lacks IORING_FEAT_SINGLE_MMAP")
	}

	sqSize := int(p.SqOff.Array + p.SqEntries*4)
	cqSize := int(p.CqOff.Cqes + p.CqEntries*sizeOfCQE)
	ring, err := unix.Mmap(w.ringFD, _IORING_OFF_SQ_RING, max(sqSize, cqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap ring: %v", err)
	}
	w.sqRing, w.cqRing = ring, ring
	w.sqes, err = unix.Mmap(w.ringFD, _IORING_OFF_SQES, int(p.SqEntries)*sizeOfSQE128, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap SQEs: %v", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	w.sqHead, w.sqTail = u32(ring, p.SqOff.Head), u32(ring, p.SqOff.Tail)
	w.sqMask, w.sqArray = u32(ring, p.SqOff.RingMask), u32(ring, p.SqOff.Array)
	w.cqHead, w.cqTail = u32(ring, p.CqOff.Head), u32(ring, p.CqOff.Tail)
	w.cqMask = u32(ring, p.CqOff.RingMask)
	w.cqes = unsafe.Pointer(&ring[p.CqOff.Cqes])
	return nil
}

func (w *uringWorker) close() {
	for _, m := range [][]byte{w.sqes, w.sqRing, w.mem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	w.sqes, w.sqRing, w.cqRing, w.mem = nil, nil, nil, nil
	if w.ringFD > 0 {
		syscall.Close(w.ringFD)
		w.ringFD = -1
	}
}

// pushCmd queues one FUSE uring command.
func (w *uringWorker) pushCmd(cmdOp uint32, commitID uint64, addr uintptr, length uint32) {
	tail := atomic.LoadUint32(w.sqTail)
	idx := tail & *w.sqMask
	sqe := w.sqes[int(idx)*sizeOfSQE128 : int(idx+1)*sizeOfSQE128]
	clear(sqe)
	sqe[0] = _IORING_OP_URING_CMD
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(w.devFD)
	*(*uint32)(unsafe.Pointer(&sqe[8])) = cmdOp
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(addr)
	*(*uint32)(unsafe.Pointer(&sqe[24])) = length
	*(*uint64)(unsafe.Pointer(&sqe[32])) = commitID // user_data, for debugging
	cmd := (*uringCmdReq)(unsafe.Pointer(&sqe[sqeCmdOffset]))
	cmd.CommitID = commitID
	cmd.QID = uint16(w.qid)
	*(*uint32)(unsafe.Add(unsafe.Pointer(w.sqArray), 4*idx)) = idx
	atomic.StoreUint32(w.sqTail, tail+1)
}

// enter submits the queued commands and, if wait, waits for a
// completion. The queued commands are submitted exactly once, even if
// the wait is interrupted.
func (w *uringWorker) enter(toSubmit uint32, wait bool) error {
	for {
		var minComplete, flags uintptr
		if wait {
			minComplete, flags = 1, _IORING_ENTER_GETEVENTS
		}
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(w.ringFD), uintptr(toSubmit), minComplete, flags, 0, 0)
		if errno == 0 || errno == syscall.EINTR {
			if errno == 0 {
				toSubmit -= min(toSubmit, uint32(n))
			}
			if toSubmit == 0 && (!wait || w.peek() != nil) {
				return nil
			}
			continue
		}
		return errno
	}
}

// peek returns the next completion, or nil.
func (w *uringWorker) peek() *ioUringCQE {
	head := atomic.LoadUint32(w.cqHead)
	if head == atomic.LoadUint32(w.cqTail) {
		return nil
	}
	return (*ioUringCQE)(unsafe.Add(w.cqes, uintptr(head&*w.cqMask)*sizeOfCQE))
}

func (w *uringWorker) advance() {
	atomic.AddUint32(w.cqHead, 1)
}

// register hands the entry to the kernel. A failure completes at once;
// success completes only when the first request arrives.
func (w *uringWorker) register() error {
	iov := (*[2]syscall.Iovec)(unsafe.Pointer(&w.mem[(uringHeaderSize+15)&^15]))
	iov[0].Base, iov[0].Len = &w.header[0], uint64(len(w.header))
	iov[1].Base, iov[1].Len = &w.payload[0], uint64(len(w.payload))
	w.pushCmd(_FUSE_IO_URING_CMD_REGISTER, 0, uintptr(unsafe.Pointer(iov)), 2)
	if err := w.enter(1, false); err != nil {
		return fmt.Errorf("io_uring: queue %d: io_uring_enter: %v", w.qid, err)
	}
	if cqe := w.peek(); cqe != nil && cqe.Res < 0 {
		return fmt.Errorf("io_uring: queue %d: FUSE_IO_URING_CMD_REGISTER: %v", w.qid, syscall.Errno(-cqe.Res))
	}
	return nil
}

// serve handles requests until the connection goes away.
func (w *uringWorker) serve() {
	var toSubmit uint32
	for {
		if err := w.enter(toSubmit, true); err != nil {
			w.server.opts.Logger.Printf("io_uring: queue %d: io_uring_enter: %v", w.qid, err)
			return
		}
		toSubmit = 0
		cqe := w.peek()
		res := cqe.Res
		w.advance()
		if res < 0 {
			// ENOTCONN: the connection is torn down (unmount).
			if errno := syscall.Errno(-res); errno != syscall.ENOTCONN && errno != syscall.ECONNABORTED {
				w.server.opts.Logger.Printf("io_uring: queue %d: %v", w.qid, errno)
			}
			return
		}
		commitID := w.handle()
		w.pushCmd(_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commitID, 0, 0)
		toSubmit = 1
	}
}

// handle serves the request in the entry and writes the reply into it.
// It returns the request's commit ID.
func (w *uringWorker) handle() uint64 {
	ms := w.server
	ms.uring.requests.Add(1)
	hdr := w.header
	inHdr := (*InHeader)(unsafe.Pointer(&hdr[0]))
	ent := (*uringEntInOut)(unsafe.Pointer(&hdr[uringEntInOutOff]))
	commitID := ent.CommitID
	payloadSz := int(ent.PayloadSz)
	// The op header went to op_in, everything after it to the
	// payload; the in header's length counts both.
	opInSz := int(inHdr.Length) - int(unsafe.Sizeof(InHeader{})) - payloadSz

	n, st := 0, Status(EIO)
	if opInSz >= 0 && opInSz <= uringOpInSize && payloadSz <= len(w.payload) {
		in := [3][]byte{
			hdr[:unsafe.Sizeof(InHeader{})],
			hdr[uringOpInOffset : uringOpInOffset+opInSz],
			w.payload[:payloadSz],
		}
		out := [2][]byte{hdr[:sizeOfOutHeader], w.payload}
		if ms.opts.SingleThreaded {
			ms.requestProcessingMu.Lock()
		}
		n, st = ms.handleIov(&w.req, in[:], out[:])
		if ms.opts.SingleThreaded {
			ms.requestProcessingMu.Unlock()
		}
		w.resetRequest()
	} else {
		ms.opts.Logger.Printf("io_uring: queue %d: bad request: len %d, payload %d", w.qid, inHdr.Length, payloadSz)
	}
	if n == 0 {
		// No reply (the filesystem suppressed it, or the request
		// could not be parsed): the entry must be committed all
		// the same, or it is lost.
		*(*OutHeader)(unsafe.Pointer(&hdr[0])) = OutHeader{
			Length: uint32(sizeOfOutHeader),
			Status: -int32(st),
			Unique: commitID,
		}
		n = int(sizeOfOutHeader)
	}
	ent.PayloadSz = uint32(n - int(sizeOfOutHeader))
	return commitID
}

// resetRequest readies w.req for the next request, as
// fuseFD.returnRequest does for pooled requests.
func (w *uringWorker) resetRequest() {
	if w.req.interrupted {
		w.req.interrupted = false
		w.req.cancel = make(chan struct{})
	}
	w.req.clear()
}
