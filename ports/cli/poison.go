package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/auditq/auditq/ports/contract"
	"github.com/nats-io/nats.go"
)

// PoisonMessage is one message of the poison stream, as the poison
// commands show it.
type PoisonMessage struct {
	Seq     uint64
	Time    time.Time // when the poison stream stored it
	Subject string    // audit.poison.<job>
	Job     string
	ID      string // the original message id
	EventID string // the id its event would be stored under; "" when not one event
	Reason  string
	Handler string
	Target  string // where a replay publishes it; "" when unknown
	// Truncated: the payload was cut to fit the broker; only a corrected
	// payload (replay --file) can be replayed.
	Truncated bool
	Headers   nats.Header
	Payload   []byte
}

// PoisonFilter selects poison messages; Limit 0 means all.
type PoisonFilter struct {
	Job, Reason string
	Limit       int
}

// PoisonReplay is a replay stored in the job stream.
type PoisonReplay struct {
	Subject   string // the job subject
	Seq       uint64 // its sequence in the job stream
	ID        string // the message id it kept
	Duplicate bool   // the job stream had this replay already
}

// PoisonStore is the poison stream.
type PoisonStore interface {
	// List returns the messages f selects, newest first.
	List(ctx context.Context, f PoisonFilter) ([]PoisonMessage, error)
	Get(ctx context.Context, seq uint64) (PoisonMessage, error)
	// Replay publishes message seq (or payload, when not nil) to its job
	// subject, waits for the ack, then removes it from the poison stream.
	Replay(ctx context.Context, seq uint64, payload []byte) (PoisonReplay, error)
	// Discard removes message seq and returns it.
	Discard(ctx context.Context, seq uint64) (PoisonMessage, error)
	// Stream is the poison stream's name, for messages.
	Stream() string
	Close()
}

// PoisonOpener opens the poison stream of the service.
type PoisonOpener func(ctx context.Context) (PoisonStore, error)

const poisonUsage = `Usage: auditq poison list [--job JOB] [--reason TEXT] [--limit 50] [--json]
       auditq poison show [--json | --payload] SEQ
       auditq poison replay [--file PAYLOAD] [--timeout 10s] SEQ...
       auditq poison discard SEQ...`

// Poison implements "auditq poison": rejected jobs and events in stream
// AUDIT_POISON, listed, shown, replayed to their job subject or discarded.
func Poison(ctx context.Context, open PoisonOpener, args []string, out io.Writer) error {
	if len(args) == 0 {
		p := &printer{w: out}
		p.println(poisonUsage)
		if p.err != nil {
			return p.err
		}
		return usagef(`expected "auditq poison list|show|replay|discard"`)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "list":
		return poisonList(ctx, open, rest, out)
	case "show":
		return poisonShow(ctx, open, rest, out)
	case "replay":
		return poisonReplay(ctx, open, rest, out)
	case "discard":
		return poisonDiscard(ctx, open, rest, out)
	case "-h", "-help", "--help", "help":
		p := &printer{w: out}
		p.println(poisonUsage)
		return p.err
	default:
		return usagef("unknown poison command %q (list, show, replay, discard)", sub)
	}
}

// parseInterleaved parses flags of fs anywhere among args ("replay 12
// --file x" as well as "replay --file x 12") and returns the positional
// arguments; help is true when -h was asked for.
func parseInterleaved(fs *flag.FlagSet, args []string) (positional []string, help bool, err error) {
	for {
		if help, err := parseFlags(fs, args, true); help || err != nil {
			return nil, help, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, false, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), false, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// sequences parses SEQ arguments.
func sequences(args []string) ([]uint64, error) {
	if len(args) == 0 {
		return nil, usagef("give the sequence number of at least one poison message (see auditq poison list)")
	}
	out := make([]uint64, len(args))
	for i, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, usagef("%q is not a sequence number", a)
		}
		out[i] = n
	}
	return out, nil
}

func withStore(ctx context.Context, open PoisonOpener, fn func(PoisonStore) error) error {
	store, err := open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

func poisonList(ctx context.Context, open PoisonOpener, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("poison list", flag.ContinueOnError)
	fs.SetOutput(out)
	var f PoisonFilter
	fs.StringVar(&f.Job, "job", "", "only this job's messages: log, bulk, cleanup or report")
	fs.StringVar(&f.Reason, "reason", "", "only messages whose reason contains this text (any case)")
	fs.IntVar(&f.Limit, "limit", 50, "print at most this many, newest first (0: all)")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	fs.Usage = usage(fs, out, "Usage: auditq poison list [--job JOB] [--reason TEXT] [--limit 50] [--json]",
		"Lists the messages of stream AUDIT_POISON, newest first: sequence, time stored, job,",
		"message id, event id and reason.")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if f.Limit < 0 {
		return usagef("--limit must not be negative")
	}
	if _, ok := contract.PoisonJobs()[f.Job]; f.Job != "" && !ok {
		return usagef("--job %q: one of %s", f.Job, strings.Join(poisonJobNames(), ", "))
	}
	return withStore(ctx, open, func(store PoisonStore) error {
		msgs, err := store.List(ctx, f)
		if err != nil {
			return err
		}
		if *asJSON {
			return printPoisonJSON(out, msgs, false)
		}
		if len(msgs) == 0 {
			p := &printer{w: out}
			p.printf("no messages in %s%s\n", store.Stream(), filterText(f))
			return p.err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		t := &printer{w: tw}
		t.println("SEQ\tSTORED (UTC)\tJOB\tID\tEVENT ID\tREASON")
		for _, m := range msgs {
			t.printf("%d\t%s\t%s\t%s\t%s\t%s\n", m.Seq, m.Time.UTC().Format(time.RFC3339), oneLine(m.Job),
				orDash(oneLine(m.ID)), orDash(oneLine(m.EventID)), oneLine(m.Reason))
		}
		t.flush(tw)
		return t.err
	})
}

// poisonJobNames are the jobs of the poison subjects, sorted.
func poisonJobNames() []string {
	var names []string
	for job := range contract.PoisonJobs() {
		names = append(names, job)
	}
	sort.Strings(names)
	return names
}

func filterText(f PoisonFilter) string {
	var parts []string
	if f.Job != "" {
		parts = append(parts, "job "+f.Job)
	}
	if f.Reason != "" {
		parts = append(parts, fmt.Sprintf("reason containing %q", f.Reason))
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, " and ")
}

// poisonView is the JSON form of a poison message: list prints it without
// headers and payload, show with them.
type poisonView struct {
	Seq       uint64              `json:"seq"`
	Time      time.Time           `json:"time"`
	Subject   string              `json:"subject"`
	Job       string              `json:"job"`
	ID        string              `json:"id"`
	EventID   string              `json:"eventId,omitempty"`
	Reason    string              `json:"reason"`
	Handler   string              `json:"handler,omitempty"`
	Target    string              `json:"replayTo,omitempty"`
	Truncated bool                `json:"truncated,omitempty"`
	Headers   map[string][]string `json:"headers,omitempty"`
	// Payload is the payload as text when it is valid UTF-8, else
	// PayloadBase64 holds it.
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 []byte  `json:"payloadBase64,omitempty"`
}

func view(m PoisonMessage, full bool) poisonView {
	v := poisonView{
		Seq: m.Seq, Time: m.Time.UTC(), Subject: m.Subject, Job: m.Job, ID: m.ID, EventID: m.EventID,
		Reason: m.Reason, Handler: m.Handler, Target: m.Target, Truncated: m.Truncated,
	}
	if full {
		v.Headers = m.Headers
		if utf8.Valid(m.Payload) {
			s := string(m.Payload)
			v.Payload = &s
		} else {
			v.PayloadBase64 = m.Payload
		}
	}
	return v
}

// printPoisonJSON prints one JSON object per message and line (NDJSON).
func printPoisonJSON(out io.Writer, msgs []PoisonMessage, full bool) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for _, m := range msgs {
		if err := enc.Encode(view(m, full)); err != nil {
			return err
		}
	}
	return nil
}

func poisonShow(ctx context.Context, open PoisonOpener, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("poison show", flag.ContinueOnError)
	fs.SetOutput(out)
	asJSON := fs.Bool("json", false, "print one JSON object: the fields of list, the headers and the payload")
	payloadOnly := fs.Bool("payload", false, "print the payload only, byte for byte (to correct it for replay --file)")
	fs.Usage = usage(fs, out, "Usage: auditq poison show [--json | --payload] SEQ",
		"Prints poison message SEQ: a summary line, its headers sorted by name, a blank line and its payload.")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	if *asJSON && *payloadOnly {
		return usagef("give --json or --payload, not both")
	}
	seqs, err := sequences(pos)
	if err != nil {
		return err
	}
	return withStore(ctx, open, func(store PoisonStore) error {
		var msgs []PoisonMessage
		for _, seq := range seqs {
			m, err := store.Get(ctx, seq)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		if *asJSON {
			return printPoisonJSON(out, msgs, true)
		}
		p := &printer{w: out}
		for i, m := range msgs {
			if *payloadOnly {
				if _, err := out.Write(m.Payload); err != nil {
					return err
				}
				continue
			}
			if i > 0 {
				p.println()
			}
			printPoisonMessage(p, m)
		}
		return p.err
	})
}

// printPoisonMessage prints m as "auditq poison show" does.
func printPoisonMessage(p *printer, m PoisonMessage) {
	p.printf("seq %d on %s, stored %s\n", m.Seq, m.Subject, m.Time.UTC().Format(time.RFC3339Nano))
	p.printf("id %s, event id %s, replay to %s\n", orDash(m.ID), orDash(m.EventID), orDash(m.Target))
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range m.Headers[k] {
			p.printf("%s: %s\n", k, oneLine(v))
		}
	}
	p.println()
	if len(m.Payload) == 0 {
		p.println("(no payload)")
		return
	}
	if !utf8.Valid(m.Payload) {
		p.printf("(%d bytes, not UTF-8: see --payload or --json)\n", len(m.Payload))
		return
	}
	p.printf("%s", m.Payload)
	if m.Payload[len(m.Payload)-1] != '\n' {
		p.println()
	}
	if m.Truncated {
		p.printf("(cut to %d bytes to fit the broker: replay it with --file)\n", len(m.Payload))
	}
}

func poisonReplay(ctx context.Context, open PoisonOpener, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("poison replay", flag.ContinueOnError)
	fs.SetOutput(out)
	file := fs.String("file", "", "publish this file's content instead of the stored payload (one SEQ only); - reads standard input")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for each replay's ack")
	fs.Usage = usage(fs, out, "Usage: auditq poison replay [--file PAYLOAD] [--timeout 10s] SEQ...",
		"Publishes each poison message (or the corrected payload) to its job subject under its original",
		"id, waits for JetStream's ack, then removes it from AUDIT_POISON. A replay rejected again",
		"returns to AUDIT_POISON with its new reason.")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	seqs, err := sequences(pos)
	if err != nil {
		return err
	}
	var payload []byte
	if *file != "" {
		if len(seqs) != 1 {
			return usagef("--file replays one message: give one SEQ")
		}
		if *file == "-" {
			payload, err = io.ReadAll(os.Stdin)
		} else {
			payload, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		if len(payload) == 0 {
			return usagef("--file %s is empty", *file)
		}
	}
	return withStore(ctx, open, func(store PoisonStore) error {
		p := &printer{w: out}
		var errs []error
		for _, seq := range seqs {
			rctx, cancel := context.WithTimeout(ctx, *timeout)
			r, err := store.Replay(rctx, seq, payload)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			dup := ""
			if r.Duplicate {
				dup = " (already there: an earlier replay)"
			}
			p.printf("replayed %d to %s as seq %d, id %s%s; removed from %s\n", seq, r.Subject, r.Seq, r.ID, dup, store.Stream())
		}
		return errors.Join(append(errs, p.err)...)
	})
}

func poisonDiscard(ctx context.Context, open PoisonOpener, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("poison discard", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = usage(fs, out, "Usage: auditq poison discard SEQ...",
		"Removes each poison message for good.")
	pos, help, err := parseInterleaved(fs, args)
	if help || err != nil {
		return err
	}
	seqs, err := sequences(pos)
	if err != nil {
		return err
	}
	return withStore(ctx, open, func(store PoisonStore) error {
		p := &printer{w: out}
		var errs []error
		for _, seq := range seqs {
			m, err := store.Discard(ctx, seq)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.printf("discarded %d (%s, id %s, event id %s)\n", seq, m.Subject, orDash(m.ID), orDash(m.EventID))
		}
		return errors.Join(append(errs, p.err)...)
	})
}

// oneLine replaces control characters (tabs, newlines) by spaces, so that
// each message stays one line with fields a tab-aligned table can keep.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
