// Command auditq records audit events published on NATS JetStream into
// PostgreSQL exactly once. Run "auditq help" for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	_ "time/tzdata" // report time zones work where the system has no zoneinfo (e.g. scratch containers)

	"golang.org/x/term"

	"github.com/auditq/auditq/bench"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/cli"
	"github.com/auditq/auditq/service"
)

const usage = `auditq records audit events from NATS JetStream into PostgreSQL, exactly once.

Usage:
  auditq serve               run the service (embedded NATS unless AUDITQ_NATS_URL is set)
  auditq publish [flags]     publish a test event, or a JSON file of events, and wait for the acks
  auditq cleanup [flags]     run a retention cleanup now and wait for its result, e.g.
                             auditq cleanup --retention-days 90 --exclude security.breach,admin.access [--dry-run]
  auditq schedule show       print the installed JetStream schedules and their next firing
  auditq bench [flags]       end-to-end benchmark on a scratch database (see "auditq bench -h")
  auditq report [flags]      ask the running service for a compliance report, e.g.
                             auditq report --type weekly [--date 2026-11-24] [--tz Europe/Berlin] [--json]
  auditq query [flags]       search the audit trail, newest first, e.g.
                             auditq query --action 'guild.*' --user u1 --limit 50 [--json]
  auditq export [flags]      every event of a filter as NDJSON or CSV, e.g.
                             auditq export --format csv --from 2026-11-01 --to 2026-12-01 > november.csv
  auditq verify [flags]      check the stored trail for tampering, e.g.
                             auditq verify [--checkpoints-from nats] [--reports] | auditq verify --event EVENT_ID
  auditq poison list|show|replay|discard
                             see rejected messages, re-drive them to their job (corrected or not), or drop them
  auditq checkpoint          ask the running service to write a signed checkpoint now
  auditq erase --user ID [--user ID ...] [--tenant T]
                             erase users' personal data (of tenant T; its mode encrypt): recorded, then the keys destroyed
  auditq streams [--json]    list the log streams (AUDITQ_STREAMS_FILE) with their state, lag and last error
  auditq version             print the version of this binary (also --version)
  auditq help                show this help and the configuration variables

Run "auditq COMMAND -h" for the flags of a command. Exit codes: 0 done, 1 failed (verify: tampering found),
2 a command line that cannot work, 3 pending (verify --event: not yet covered by a signed checkpoint).
Configuration comes from the environment:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "auditq:", err)
		os.Exit(cli.ExitCode(err))
	}
}

// run dispatches args to a command: serve and bench here, the client
// commands to the CLI, each configured from getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "help"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help", "-h", "--help":
		printHelp(stdout)
		return nil
	case "version", "--version": // needs no configuration
		return cli.Version(args, stdout)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			printHelp(stdout)
			return nil
		}
		return serve(ctx, cfg, newLogger(cfg, stderr))
	case "bench":
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		return bench.Run(ctx, exe, args, stdout)
	}
	if slices.Contains(cli.Commands, cmd) {
		return cli.Run(ctx, cmd, args, service.CLIDeps(cfg), stdout)
	}
	printHelp(stderr)
	return fmt.Errorf("unknown command %q", cmd)
}

// printHelp prints the usage and the configuration variables; a failed
// write has nowhere better to be reported.
func printHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString(usage)
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "  %-28s %s\n  %-28s default: %s\n", v.Name, v.Help, "", def)
	}
	_, _ = io.WriteString(w, b.String())
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve runs the service until ctx ends, then stops it gracefully.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	svc := service.New(cfg, log)
	if err := svc.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return svc.Close()
}
