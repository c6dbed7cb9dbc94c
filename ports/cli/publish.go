package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/auditq/auditq/ports/contract"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connector opens the NATS connection a command uses, once its flags are
// parsed.
type Connector func() (*nats.Conn, error)

// Publish implements "auditq publish": it sends a demo event (or -count of
// them), or the events of a JSON file, and waits for JetStream's acks. A
// file holding {"events": [...]} goes to audit.bulk as one message; an
// array or a single object goes to audit.log, one message per event.
func Publish(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(out)
	file := fs.String("file", "", "JSON file: one event, an array of events, or {\"events\": [...]} for audit.bulk")
	count := fs.Int("count", 1, "without -file: how many demo events to publish")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for each ack")
	fs.Usage = usage(fs, out, "Usage: auditq publish [-file events.json] [-count N] [-timeout 10s]")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	msgs, err := buildMessages(*file, *count)
	if err != nil {
		return err
	}
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		pctx, cancel := context.WithTimeout(ctx, *timeout)
		ack, err := js.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			return fmt.Errorf("publish to %s: %w", m.Subject, err)
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate: already in the stream)"
		}
		if _, err := fmt.Fprintf(out, "%s seq=%d msg-id=%s%s\n", m.Subject, ack.Sequence, m.Header.Get(nats.MsgIdHdr), dup); err != nil {
			return err
		}
	}
	return nil
}

func buildMessages(file string, count int) ([]*nats.Msg, error) {
	if file == "" {
		if count < 1 {
			return nil, errors.New("-count must be at least 1")
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
			msgs = append(msgs, msg(contract.SubjectLog, id, body))
		}
		return msgs, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	switch {
	case len(data) > 0 && data[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		msgs := make([]*nats.Msg, 0, len(items))
		for _, it := range items {
			msgs = append(msgs, msg(contract.SubjectLog, eventID(it), it))
		}
		return msgs, nil
	case len(data) > 0 && data[0] == '{':
		var probe struct {
			Events json.RawMessage `json:"events"`
		}
		_ = json.Unmarshal(data, &probe)
		if probe.Events != nil {
			sum := sha256.Sum256(data)
			return []*nats.Msg{msg(contract.SubjectBulk, "bulk-"+hex.EncodeToString(sum[:16]), data)}, nil
		}
		return []*nats.Msg{msg(contract.SubjectLog, eventID(data), data)}, nil
	default:
		return nil, fmt.Errorf("%s: expected a JSON object or array", file)
	}
}

// msg builds a message; the event id doubles as Nats-Msg-Id so JetStream
// drops a re-publish within its duplicate window.
func msg(subject, id string, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = body
	if id != "" {
		m.Header.Set(nats.MsgIdHdr, id)
	}
	return m
}

func eventID(raw []byte) string {
	var probe struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &probe)
	return probe.ID
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
