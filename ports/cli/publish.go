package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// Connector opens the NATS connection a command uses, once its flags are
// parsed.
type Connector func() (*nats.Conn, error)

// PublishLimits are the service's validation settings that "auditq
// publish" checks a file against before it publishes anything, so that it
// refuses exactly what the service would reject. The composition root
// fills them from the configuration; zero values mean the service's
// defaults.
type PublishLimits struct {
	BulkMaxEvents int           // AUDITQ_BULK_MAX_EVENTS; 0: 1,000
	FutureSkew    time.Duration // AUDITQ_MAX_FUTURE_SKEW; 0: audit.DefaultFutureSkew

	unchecked bool // -no-validate: split the file, check nothing
}

// DefaultBulkMaxEvents is the service's default AUDITQ_BULK_MAX_EVENTS.
const DefaultBulkMaxEvents = 1000

// maxListedErrors is how many invalid events a refused file lists.
const maxListedErrors = 20

// fallbackStandIn is the message id the local validation hands the decoder
// for an event without "id": the service gives it one (Nats-Msg-Id, else
// AUDIT:<sequence>), so a missing id is not an error here.
const fallbackStandIn = "AUDIT:0"

// Publish implements "auditq publish": it sends a demo event (or -count of
// them), or the events of a JSON file, and waits for JetStream's acks. A
// file holding {"events": [...]} goes to audit.bulk as one message, and
// publish waits for the job's result and prints it; an array or a single
// object goes to audit.log, one message per event.
//
// A file is first checked with the service's own decoder (audit.DecodeEvent,
// audit.DecodeBulk) and limits: if any event breaks a rule, nothing is
// published and the error (exit code 2) names the file, the event and the
// field. A bulk job whose result rejects an event is an error (exit 1).
// -no-validate skips the check (the file must still be JSON), so that the
// service's own rejections can be watched.
func Publish(ctx context.Context, connect Connector, limits PublishLimits, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(out)
	file := fs.String("file", "", "JSON file: one event, an array of events, or {\"events\": [...]} for audit.bulk")
	count := fs.Int("count", 1, "without -file: how many demo events to publish")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for each ack, and for the result of a bulk job")
	noValidate := fs.Bool("no-validate", false, "publish the file's events as they are, without checking them first: to watch the service reject them")
	fs.Usage = usage(fs, out, "Usage: auditq publish [-file events.json [-no-validate]] [-count N] [-timeout 30s]")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if limits.BulkMaxEvents <= 0 {
		limits.BulkMaxEvents = DefaultBulkMaxEvents
	}
	var (
		msgs []*nats.Msg
		err  error
	)
	if *file == "" {
		msgs, err = demoMessages(*count)
	} else {
		var data []byte
		if data, err = os.ReadFile(*file); err != nil {
			return usageError{err}
		}
		if *noValidate {
			limits.unchecked = true
		}
		msgs, err = fileMessages(filepath.Base(*file), data, limits, time.Now())
	}
	if err != nil {
		return err
	}
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	for i, m := range msgs {
		if size := int64(len(m.Data)); size > nc.MaxPayload() {
			return usagef("%s: %s message %d is %d bytes, more than the server's max_payload of %d bytes",
				*file, m.Subject, i, size, nc.MaxPayload())
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if len(msgs) == 1 && msgs[0].Subject == contract.SubjectBulk {
		return publishBulk(ctx, nc, js, msgs[0], *timeout, out)
	}
	for _, m := range msgs {
		if err := publishOne(ctx, js, m, *timeout, out); err != nil {
			return err
		}
	}
	return nil
}

// publishOne publishes m, waits for its ack and prints it with the id the
// event is stored under (a bulk job: the job's id).
func publishOne(ctx context.Context, js jetstream.JetStream, m *nats.Msg, timeout time.Duration, out io.Writer) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	ack, err := js.PublishMsg(pctx, m)
	cancel()
	if err != nil {
		return fmt.Errorf("publish to %s: %w", m.Subject, err)
	}
	what, id := "job", m.Header.Get(nats.MsgIdHdr)
	if m.Subject != contract.SubjectBulk {
		what, id = "id", audit.EventID(m.Data, id)
	}
	_, err = fmt.Fprintf(out, "%s seq=%d %s=%s\n", m.Subject, ack.Sequence, what, id)
	return err
}

// bulkResult is a bulk job's result as published on audit.results.bulk;
// Error is set when the job was rejected as a whole.
type bulkResult struct {
	ID         string `json:"id"`
	Total      int    `json:"total"`
	Inserted   int    `json:"inserted"`
	Duplicates int    `json:"duplicates"`
	Rejected   []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"rejected"`
	Error string `json:"error"`
}

// publishBulk publishes one audit.bulk message, then waits for its result
// (header job_id, the message id) on audit.results.bulk, which the
// publisher role may read, and prints it; a result with an error says the
// job was rejected as a whole. The subscription is made before the
// publish, so the result cannot be missed; the job's id is new to this
// publish, so the stream never drops it as a duplicate.
func publishBulk(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, m *nats.Msg, timeout time.Duration, out io.Writer) error {
	id := m.Header.Get(nats.MsgIdHdr)
	answers := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(contract.SubjectBulkResults, answers)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", contract.SubjectBulkResults, err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // the connection closes anyway
	if err := nc.Flush(); err != nil {
		return err
	}
	if err := publishOne(ctx, js, m, timeout, out); err != nil {
		return err
	}
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	for {
		select {
		case a := <-answers:
			if a.Header.Get("job_id") == id {
				return printBulkResult(out, id, a.Data)
			}
		case <-wait.C:
			return fmt.Errorf("no result for bulk %s within %s; it may still be waiting in the stream (see %s)", id, timeout, contract.SubjectBulkResults)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// printBulkResult prints a bulk job's result; it returns an error (exit 1)
// when the job rejected an event.
func printBulkResult(out io.Writer, id string, data []byte) error {
	var r bulkResult
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("unreadable result of bulk %s %q: %w", id, data, err)
	}
	if r.Error != "" {
		return fmt.Errorf("bulk %s rejected as a whole: %s", id, r.Error)
	}
	p := &printer{w: out}
	p.printf("bulk %s: %d events: %d inserted, %d duplicates, %d rejected\n", id, r.Total, r.Inserted, r.Duplicates, len(r.Rejected))
	for _, rej := range r.Rejected {
		p.printf("  rejected event %d: %s\n", rej.Index, rej.Error)
	}
	if p.err != nil {
		return p.err
	}
	if len(r.Rejected) > 0 {
		return fmt.Errorf("bulk %s: %d of %d events rejected (they are in %s)", id, len(r.Rejected), r.Total, contract.PoisonPrefix+"bulk")
	}
	return nil
}

func demoMessages(count int) ([]*nats.Msg, error) {
	if count < 1 {
		return nil, usagef("-count must be at least 1")
	}
	msgs := make([]*nats.Msg, 0, count)
	for range count {
		id := randomID()
		ev := map[string]any{
			"id": id, "userId": "demo-user", "action": "demo.event", "resourceType": "demo",
			"resourceId": "1", "details": map[string]any{"source": "auditq publish"},
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		}
		body, _ := json.Marshal(ev)
		msgs = append(msgs, msg(contract.SubjectLog, body))
	}
	return msgs, nil
}

// fileMessages checks the contents of file name with the service's
// decoder as of now and returns the messages to publish: one audit.bulk
// message for {"events": [...]}, else one audit.log message per event.
// Any invalid event, an empty file and an empty array are errors wrapping
// ErrUsage, naming name, the event's index (in an array) and the field.
func fileMessages(name string, data []byte, limits PublishLimits, now time.Time) ([]*nats.Msg, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, usagef("%s: is empty: want one event, an array of events, or {\"events\": [...]}", name)
	}
	receipt := audit.Receipt{ReceivedAt: now, FallbackID: fallbackStandIn, FutureSkew: limits.FutureSkew}
	switch {
	case trimmed[0] == '[':
		items, err := splitArray(trimmed)
		if err != nil {
			return nil, usagef("%s: %w", name, err)
		}
		if len(items) == 0 {
			return nil, usagef("%s: holds an empty array: no events to publish", name)
		}
		var problems []string
		msgs := make([]*nats.Msg, 0, len(items))
		for i, it := range items {
			if _, err := audit.DecodeEvent(it, receipt); err != nil && !limits.unchecked {
				problems = append(problems, fmt.Sprintf("%s: event %d: %v", name, i, err))
				continue
			}
			msgs = append(msgs, msg(contract.SubjectLog, it))
		}
		if len(problems) > 0 {
			return nil, invalidEvents(problems, len(items), "audit.log")
		}
		return msgs, nil
	case trimmed[0] == '{' && hasTopLevelKey(trimmed, "events"):
		m := msg(contract.SubjectBulk, trimmed)
		id := m.Header.Get(nats.MsgIdHdr)
		receipt.FallbackID = id
		_, rejected, err := audit.DecodeBulk(trimmed, limits.BulkMaxEvents, receipt)
		if limits.unchecked {
			rejected, err = nil, nil
		}
		if err != nil {
			return nil, usagef("%s: %w", name, err)
		}
		if len(rejected) > 0 {
			problems := make([]string, len(rejected))
			for i, r := range rejected {
				problems[i] = fmt.Sprintf("%s: event %d: %s", name, r.Index, strings.TrimPrefix(r.Error, fmt.Sprintf("events[%d].", r.Index)))
			}
			return nil, invalidEvents(problems, -1, "audit.bulk")
		}
		return []*nats.Msg{m}, nil
	default:
		if _, err := audit.DecodeEvent(trimmed, receipt); err != nil && !limits.unchecked {
			return nil, usagef("%s: %w", name, err)
		}
		return []*nats.Msg{msg(contract.SubjectLog, trimmed)}, nil
	}
}

// invalidEvents is the error of a file with invalid events: one line per
// event (at most maxListedErrors), then that nothing was published.
func invalidEvents(problems []string, total int, subject string) error {
	lines := problems
	if len(lines) > maxListedErrors {
		lines = append(lines[:maxListedErrors:maxListedErrors], fmt.Sprintf("... and %d more invalid events", len(problems)-maxListedErrors))
	}
	what := fmt.Sprintf("%d invalid events", len(problems))
	if len(problems) == 1 {
		what = "1 invalid event"
	}
	if total > 0 {
		what += fmt.Sprintf(" of %d", total)
	}
	return usagef("%s\nnothing published to %s: %s", strings.Join(lines, "\n"), subject, what)
}

// splitArray returns the elements of the JSON array data, as sent. A
// syntax error names the element it is in and its line.
func splitArray(data []byte) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '['
		return nil, jsonError(data, dec, -1, err)
	}
	var items []json.RawMessage
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(data, dec, len(items), err)
		}
		items = append(items, raw)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, jsonError(data, dec, len(items), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the array")
	}
	return items, nil
}

// jsonError describes a syntax error of an array file at element index
// (-1: before the first).
func jsonError(data []byte, dec *json.Decoder, index int, err error) error {
	offset := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = errors.New("unexpected end of JSON input")
		offset = int64(len(data))
	}
	line := 1 + bytes.Count(data[:min(int(offset), len(data))], []byte("\n"))
	if index < 0 {
		return fmt.Errorf("invalid JSON at line %d: %v", line, err)
	}
	return fmt.Errorf("event %d: invalid JSON at line %d: %v", index, line, err)
}

// hasTopLevelKey reports whether the JSON object data has member key,
// reading it as far as it is well-formed: a bulk file with a broken event
// is still a bulk file, for which DecodeBulk then says what is wrong.
func hasTopLevelKey(data []byte, key string) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return false
		}
		if k == key {
			return true
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return false
		}
	}
	return false
}

// msg builds a message with a random Nats-Msg-Id of its own ("bulk-" and
// a random id for a bulk job, whose id it is), never the event id: with
// tenants (docs/tenants.md) the stream's duplicate window spans every
// tenant, while an event id is unique within its tenant only. The service
// stores an event published again once, by its tenant and id. An event
// without "id" is stored under the message id.
func msg(subject string, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = body
	id := randomID()
	if subject == contract.SubjectBulk {
		id = "bulk-" + id
	}
	m.Header.Set(nats.MsgIdHdr, id)
	return m
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
