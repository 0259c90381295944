package layers

import (
	"errors"
	"io"
)

// readAhead reads a blob on its own goroutine, a few chunks ahead of its
// consumer, and writes each chunk to a sink (digest, staged copy, progress)
// before handing it over. Extracting a layer of small files is bound by
// file-creation syscalls; this takes the blob's hashing and copying off that
// path and onto a second core.
type readAhead struct {
	chunks chan []byte   // filled chunks, in order; closed when reading stops
	free   chan []byte   // consumed chunk buffers, for reuse
	done   chan struct{} // closed by Close: stop reading
	exited chan struct{} // closed when the goroutine has returned
	err    error         // why reading stopped (io.EOF at the end); set before chunks is closed
	cur    []byte        // unread part of the chunk being consumed
	held   []byte        // the buffer of that chunk
}

const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 4
)

var errReadAheadClosed = errors.New("read-ahead closed")

func newReadAhead(r io.Reader, sink io.Writer) *readAhead {
	ra := &readAhead{
		chunks: make(chan []byte, readAheadChunks),
		free:   make(chan []byte, readAheadChunks),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for i := 0; i < readAheadChunks; i++ {
		ra.free <- make([]byte, readAheadChunk)
	}
	go ra.fill(r, sink)
	return ra
}

func (ra *readAhead) fill(r io.Reader, sink io.Writer) {
	defer close(ra.exited)
	defer close(ra.chunks)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			ra.err = errReadAheadClosed
			return
		}
		n, err := readChunk(r, buf)
		if n > 0 {
			if _, werr := sink.Write(buf[:n]); werr != nil {
				ra.err = werr
				return
			}
			select {
			case ra.chunks <- buf[:n]:
			case <-ra.done:
				ra.err = errReadAheadClosed
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

// readChunk fills buf from r, short only at the end of r or on an error.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.held != nil {
			ra.free <- ra.held[:cap(ra.held)] // never blocks: free holds every buffer
			ra.held = nil
		}
		chunk, ok := <-ra.chunks
		if !ok {
			return 0, ra.err
		}
		ra.held, ra.cur = chunk, chunk
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the reading goroutine and waits for it, so that nothing writes
// to the sink afterwards. Reading after Close is not allowed.
func (ra *readAhead) Close() {
	close(ra.done)
	<-ra.exited
}
