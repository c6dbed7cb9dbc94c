package contract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// ExportOptions tunes ReceiveExport.
type ExportOptions struct {
	// Header is sent with the request, e.g. Auditq-Requester.
	Header nats.Header
	// Timeout is how long to wait for each message of the export; 0 means
	// 30 seconds.
	Timeout time.Duration
}

// ExportError is an export that failed or was interrupted. Cursor resumes
// it: send the same filters with ExportRequest.Cursor set to it, and
// append what arrives to what was written (a resumed CSV has no header
// row).
type ExportError struct {
	// Cursor continues after the last event written to w; when none was,
	// it is the request's own cursor ("" for a fresh export).
	Cursor string
	// Events counts the events written to w before the export stopped.
	Events int
	// Code and Message are the service's error answer
	// (Nats-Service-Error-Code, Nats-Service-Error), when it sent one: 400
	// names the bad field.
	Code, Message string
	// Err is what went wrong on this side (a timeout, ctx, a write to w);
	// nil when the service answered an error.
	Err error
}

// Error says why the export stopped and how far it got.
func (e *ExportError) Error() string {
	why := e.Message
	if e.Code != "" {
		why = fmt.Sprintf("%s answered %s: %s", SubjectExport, e.Code, e.Message)
	} else if e.Err != nil {
		why = e.Err.Error()
	}
	return fmt.Sprintf("export stopped after %d events: %s", e.Events, why)
}

func (e *ExportError) Unwrap() error { return e.Err }

// ReceiveExport asks for an export on SubjectExport over nc and writes the
// body of every chunk to w, in order, acknowledging each once it is
// written (the service sends at most Auditq-Export-Window chunks ahead of
// the acknowledged one, so memory stays bounded on both sides). It checks
// that no chunk is missing and that the count and SHA-256 equal the final
// summary, which it returns. Any failure, ctx included, is an
// *ExportError holding the cursor to resume from; on ctx's end the
// service is told to stop.
func ReceiveExport(ctx context.Context, nc *nats.Conn, req ExportRequest, w io.Writer, opts ExportOptions) (ExportSummary, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	body, err := json.Marshal(req)
	if err != nil {
		return ExportSummary{}, &ExportError{Cursor: req.Cursor, Err: err}
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return ExportSummary{}, &ExportError{Cursor: req.Cursor, Err: fmt.Errorf("subscribe %s: %w", inbox, err)}
	}
	defer func() { _ = sub.Unsubscribe() }()
	m := nats.NewMsg(SubjectExport)
	m.Reply, m.Data = inbox, body
	for k, vs := range opts.Header {
		m.Header[k] = vs
	}
	if err := nc.PublishMsg(m); err != nil {
		return ExportSummary{}, &ExportError{Cursor: req.Cursor, Err: fmt.Errorf("request %s: %w", SubjectExport, err)}
	}

	r := receiver{cursor: req.Cursor, hash: sha256.New()}
	fail := func(err error) (ExportSummary, error) {
		if r.ack != "" && ctx.Err() != nil {
			_ = nc.Publish(r.ack, []byte(ExportCancel))
			_ = nc.Flush()
		}
		return ExportSummary{}, &ExportError{Cursor: r.cursor, Events: r.events, Err: err}
	}
	for seq := 1; ; seq++ {
		mctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		msg, err := sub.NextMsgWithContext(mctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return fail(fmt.Errorf("no message of the export within %s", opts.Timeout))
		case err != nil:
			return fail(err)
		}
		if msg.Header.Get("Status") == "503" && len(msg.Data) == 0 {
			return fail(fmt.Errorf("nobody answers on %s: %w", SubjectExport, nats.ErrNoResponders))
		}
		if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
			return ExportSummary{}, &ExportError{Cursor: r.cursor, Events: r.events, Code: code, Message: msg.Header.Get("Nats-Service-Error")}
		}
		if got := msg.Header.Get(HeaderExportSeq); got != strconv.Itoa(seq) {
			return fail(fmt.Errorf("message %q of the export arrived where %d was due: a chunk was lost; resume", got, seq))
		}
		if msg.Header.Get(HeaderExportStatus) == ExportDone {
			return r.finish(msg.Data, seq-1)
		}
		if err := r.chunk(msg, w); err != nil {
			return fail(err)
		}
		if err := nc.Publish(r.ack, []byte(strconv.Itoa(seq))); err != nil {
			return fail(fmt.Errorf("acknowledge chunk %d: %w", seq, err))
		}
	}
}

// receiver is the state of ReceiveExport: what was written so far.
type receiver struct {
	ack    string
	cursor string
	events int
	bytes  int64
	hash   interface {
		io.Writer
		Sum([]byte) []byte
	}
}

// chunk writes one chunk to w and advances the cursor past it.
func (r *receiver) chunk(msg *nats.Msg, w io.Writer) error {
	r.ack = msg.Header.Get(HeaderExportAck)
	n, err := strconv.Atoi(msg.Header.Get(HeaderExportEvents))
	if err != nil || r.ack == "" {
		return fmt.Errorf("chunk %s of the export lacks its %s or %s header", msg.Header.Get(HeaderExportSeq), HeaderExportEvents, HeaderExportAck)
	}
	if _, err := w.Write(msg.Data); err != nil {
		return fmt.Errorf("write the export: %w", err)
	}
	_, _ = r.hash.Write(msg.Data)
	r.bytes += int64(len(msg.Data))
	r.events += n
	if c := msg.Header.Get(HeaderExportCursor); c != "" {
		r.cursor = c
	}
	return nil
}

// finish checks the final summary against what was written.
func (r *receiver) finish(data []byte, chunks int) (ExportSummary, error) {
	var s ExportSummary
	if err := json.Unmarshal(data, &s); err != nil {
		return s, &ExportError{Cursor: r.cursor, Events: r.events, Err: fmt.Errorf("decode the export's summary: %w", err)}
	}
	sum := hex.EncodeToString(r.hash.Sum(nil))
	if s.Events != r.events || s.Chunks != chunks || s.Bytes != r.bytes || s.SHA256 != sum {
		return s, &ExportError{Cursor: r.cursor, Events: r.events, Err: fmt.Errorf(
			"the export does not add up: received %d events, %d chunks, %d bytes, sha256 %s; the service sent %d, %d, %d, %s",
			r.events, chunks, r.bytes, sum, s.Events, s.Chunks, s.Bytes, s.SHA256)}
	}
	return s, nil
}
