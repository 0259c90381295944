// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"sync"
	"sync/atomic"
)

// uringTransport is the io_uring state of a Server.
type uringTransport struct {
	// err says why requests are not served over io_uring; nil if
	// they are.
	err error

	// requests counts requests served over io_uring.
	requests atomic.Uint64

	// start is closed by Serve: workers register their entries in
	// NewServer, but handle requests only once Serve runs.
	start     chan struct{}
	startOnce sync.Once
}

// IoUring returns the number of requests served over io_uring so far,
// and a non-nil error if requests are not served over io_uring, saying
// why: not asked for (MountOptions.EnableIoUring), not offered by the
// kernel, or the ring could not be set up.
func (ms *Server) IoUring() (requests uint64, err error) {
	return ms.uring.requests.Load(), ms.uring.err
}

// startServing lets the workers handle requests.
func (u *uringTransport) startServing() {
	u.startOnce.Do(func() {
		if u.start != nil {
			close(u.start)
		}
	})
}
