package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/unionfsd/unionfsd/layers"
	"golang.org/x/term"
)

// progress returns a progress display for stderr when it is a terminal and
// we are neither quiet nor in CI; nil (no bars) otherwise.
func (g *globals) progress() layers.Progress {
	if g.quiet || os.Getenv("CI") != "" || g.stderr != os.Stderr || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return termProgress{}
}

type termProgress struct{}

func (termProgress) Start(label string, total int64) io.WriteCloser {
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
	return barWriter{bar}
}

type barWriter struct{ bar *progressbar.ProgressBar }

func (b barWriter) Write(p []byte) (int, error) { return b.bar.Write(p) }
func (b barWriter) Close() error                { return b.bar.Finish() }
