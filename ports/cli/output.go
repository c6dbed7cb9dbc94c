package cli

import (
	"flag"
	"fmt"
	"io"
)

// printer writes a command's output and keeps the first write error (a
// closed pipe, a full disk), after which it writes nothing more. The
// command returns that error once it is done, so that output lost on the
// way fails the command.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, a ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, a...)
	}
}

func (p *printer) println(a ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintln(p.w, a...)
	}
}

// flush flushes f (a tabwriter that p writes to), unless a write failed
// already, and keeps its error.
func (p *printer) flush(f interface{ Flush() error }) {
	if p.err == nil {
		p.err = f.Flush()
	}
}

// usage returns a flag.FlagSet.Usage printing lines, then fs's flags, to
// out. A failed write is not reported: Usage has no error to return, and
// fs.PrintDefaults drops its write errors too.
func usage(fs *flag.FlagSet, out io.Writer, lines ...string) func() {
	return func() {
		for _, l := range lines {
			_, _ = fmt.Fprintln(out, l)
		}
		fs.PrintDefaults()
	}
}
