package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/auditq/auditq/ports/contract"
)

// Streams implements "auditq streams": it lists the log streams of the
// running service with their state (audit.streams), or with --json the
// answer as received.
func Streams(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("streams", flag.ContinueOnError)
	fs.SetOutput(out)
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out, "Usage: auditq streams [--json]    list the log streams with their state, lag and last error")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	return askAndPrint(ctx, connect, contract.SubjectStreams, struct{}{}, *timeout, *asJSON, out, func(res contract.StreamList) error {
		return printStreams(out, res)
	})
}

// printStreams prints the log streams as a table.
func printStreams(out io.Writer, res contract.StreamList) error {
	if len(res.Streams) == 0 {
		_, err := fmt.Fprintln(out, "no log streams (AUDITQ_STREAMS_FILE)")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	p := &printer{w: tw}
	p.println("NAME\tSINK\tFORMAT\tSTATE\tDELIVERED\tFAILED\tSKIPPED\tLAG EVENTS\tLAG\tCURSOR\tLAST ERROR")
	for _, s := range res.Streams {
		lastErr := ""
		if s.LastError != nil {
			lastErr = *s.LastError
		}
		lag := (time.Duration(s.LagSeconds*1000) * time.Millisecond).String()
		p.printf("%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d/%d\t%s\n", s.Name, s.Sink, s.Format, s.State, s.Delivered,
			s.Failed, s.Skipped, s.LagEvents, lag, s.Cursor.NextBatchSeq, s.Cursor.AfterLeaf, lastErr)
	}
	if p.err != nil {
		return p.err
	}
	return tw.Flush()
}
