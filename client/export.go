package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers and values of the export protocol (docs/export.md, "On NATS").
const (
	headerExportSeq    = "Auditq-Export-Seq"
	headerExportEvents = "Auditq-Export-Events"
	headerExportCursor = "Auditq-Export-Cursor"
	headerExportAck    = "Auditq-Export-Ack"
	headerExportStatus = "Auditq-Export-Status"
	exportDone         = "done"
	exportCancel       = "cancel"
)

// ExportRequest selects an export (audit.export): every event the filters
// of Query select (its PageSize is not used: an export has no limit), in
// Format "ndjson" (the default: one event per line, as GetEvent's JSON)
// or "csv" (a header row, one column per field). A CSV guards values that
// a spreadsheet would evaluate as formulas with one leading quote unless
// CSVRaw (docs/export.md, "Formulas in CSV"). Cursor resumes an
// interrupted export: the Cursor of its *ExportError.
type ExportRequest struct {
	Query  Query
	Format string
	CSVRaw bool
	Cursor string
}

// ExportSummary is the final message of a complete export: the events,
// chunks and bytes delivered, their SHA-256 (hex, of the chunks in order)
// and the cursor after the last event.
type ExportSummary struct {
	ExportID string `json:"exportId"`
	Format   string `json:"format"`
	Events   int    `json:"events"`
	Chunks   int    `json:"chunks"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
	Cursor   string `json:"cursor"`
}

// ExportError is an export that failed or was interrupted. Cursor resumes
// it: send the same request with Cursor set to it and append what arrives
// to what was written (a resumed CSV has no header row).
type ExportError struct {
	// Cursor continues after the last event written; when none was, it
	// is the request's own cursor.
	Cursor string
	// Events counts the events written before the export stopped.
	Events int
	// Code and Message are the service's error answer, when it sent one
	// ("400" names the bad field in Message, "429" busy, "503" shutting
	// down, "504" acknowledgements stopped).
	Code, Message string
	// Err is what went wrong on this side (a timeout, ctx, a write); nil
	// when the service answered an error.
	Err error
}

func (e *ExportError) Error() string {
	why := e.Message
	if e.Code != "" {
		why = fmt.Sprintf("%s answered %s: %s", subjectExport, e.Code, e.Message)
	} else if e.Err != nil {
		why = e.Err.Error()
	}
	return fmt.Sprintf("export stopped after %d events: %s", e.Events, why)
}

func (e *ExportError) Unwrap() error { return e.Err }

// Export runs an export (audit.export) and writes it to w as it arrives:
// the body of every chunk in order, each acknowledged once written, so
// that the service sends only a few chunks ahead and memory stays bounded
// on both sides whatever the export's size. It checks that no chunk is
// missing and that the count and SHA-256 equal the final summary, which
// it returns. Any failure, ctx's end included (the service is then told
// to stop), is an *ExportError holding the cursor to resume from. Each
// message is awaited up to RequestTimeout, at least 30 seconds.
func (c *Client) Export(ctx context.Context, req ExportRequest, w io.Writer) (ExportSummary, error) {
	q := req.Query
	q.PageSize = 0
	body, err := json.Marshal(struct {
		Query
		Format string `json:"format,omitempty"`
		CSVRaw bool   `json:"csvRaw,omitempty"`
		Cursor string `json:"cursor,omitempty"`
	}{q, req.Format, req.CSVRaw, req.Cursor})
	if err != nil {
		return ExportSummary{}, &ExportError{Cursor: req.Cursor, Err: err}
	}
	wait := max(c.opts.RequestTimeout, 30*time.Second)
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return ExportSummary{}, &ExportError{Cursor: req.Cursor, Err: fmt.Errorf("subscribe %s: %w", inbox, err)}
	}
	defer func() { _ = sub.Unsubscribe() }()
	m := nats.NewMsg(subjectExport)
	m.Reply, m.Data = inbox, body
	if c.opts.Requester != "" {
		m.Header.Set(headerRequester, c.opts.Requester)
	}
	if err := c.nc.PublishMsg(m); err != nil {
		return ExportSummary{}, &ExportError{Cursor: req.Cursor, Err: fmt.Errorf("request %s: %w", subjectExport, err)}
	}
	x := exportReceiver{cursor: req.Cursor, hash: sha256.New()}
	fail := func(err error) (ExportSummary, error) {
		if x.ack != "" && ctx.Err() != nil {
			_ = c.nc.Publish(x.ack, []byte(exportCancel))
			_ = c.nc.Flush()
		}
		return ExportSummary{}, &ExportError{Cursor: x.cursor, Events: x.events, Err: err}
	}
	for seq := 1; ; seq++ {
		mctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(mctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return fail(fmt.Errorf("no message of the export within %s", wait))
		case err != nil:
			return fail(err)
		}
		if msg.Header.Get("Status") == "503" && len(msg.Data) == 0 {
			return fail(fmt.Errorf("%s: no auditq service answers: %w", subjectExport, nats.ErrNoResponders))
		}
		if code := msg.Header.Get(headerServiceCode); code != "" {
			return ExportSummary{}, &ExportError{Cursor: x.cursor, Events: x.events, Code: code, Message: msg.Header.Get(headerServiceReason)}
		}
		if got := msg.Header.Get(headerExportSeq); got != strconv.Itoa(seq) {
			return fail(fmt.Errorf("message %q of the export arrived where %d was due: a chunk was lost; resume", got, seq))
		}
		if msg.Header.Get(headerExportStatus) == exportDone {
			return x.finish(msg.Data, seq-1)
		}
		if err := x.chunk(msg, w); err != nil {
			return fail(err)
		}
		if err := c.nc.Publish(x.ack, []byte(strconv.Itoa(seq))); err != nil {
			return fail(fmt.Errorf("acknowledge chunk %d: %w", seq, err))
		}
	}
}

// exportReceiver is what Export wrote so far.
type exportReceiver struct {
	ack, cursor string
	events      int
	bytes       int64
	hash        hash.Hash
}

func (x *exportReceiver) chunk(msg *nats.Msg, w io.Writer) error {
	x.ack = msg.Header.Get(headerExportAck)
	n, err := strconv.Atoi(msg.Header.Get(headerExportEvents))
	if err != nil || x.ack == "" {
		return fmt.Errorf("chunk %s of the export lacks its %s or %s header", msg.Header.Get(headerExportSeq), headerExportEvents, headerExportAck)
	}
	if _, err := w.Write(msg.Data); err != nil {
		return fmt.Errorf("write the export: %w", err)
	}
	x.hash.Write(msg.Data)
	x.bytes += int64(len(msg.Data))
	x.events += n
	if c := msg.Header.Get(headerExportCursor); c != "" {
		x.cursor = c
	}
	return nil
}

func (x *exportReceiver) finish(data []byte, chunks int) (ExportSummary, error) {
	var s ExportSummary
	if err := json.Unmarshal(data, &s); err != nil {
		return s, &ExportError{Cursor: x.cursor, Events: x.events, Err: fmt.Errorf("decode the export's summary: %w", err)}
	}
	sum := hex.EncodeToString(x.hash.Sum(nil))
	if s.Events != x.events || s.Chunks != chunks || s.Bytes != x.bytes || s.SHA256 != sum {
		return s, &ExportError{Cursor: x.cursor, Events: x.events, Err: fmt.Errorf(
			"the export does not add up: received %d events, %d chunks, %d bytes, sha256 %s; the service sent %d, %d, %d, %s",
			x.events, chunks, x.bytes, sum, s.Events, s.Chunks, s.Bytes, s.SHA256)}
	}
	return s, nil
}

// Stream is a log stream with its state (audit.streams, docs/streams.md):
// State "starting", "active", "retrying" (LastError says why) or
// "paused"; its cursor, counts, and how far behind it is.
type Stream struct {
	Name        string       `json:"name"`
	Sink        string       `json:"sink"`
	Format      string       `json:"format"`
	State       string       `json:"state"`
	LastError   string       `json:"lastError"`
	LastErrorAt time.Time    `json:"lastErrorAt"`
	DeliveredAt time.Time    `json:"deliveredAt"`
	Cursor      StreamCursor `json:"cursor"`
	Delivered   int64        `json:"delivered"`
	Failed      int64        `json:"failed"`
	Skipped     int64        `json:"skipped"`
	LagEvents   int64        `json:"lagEvents"`
	LagSeconds  float64      `json:"lagSeconds"`
	Owner       string       `json:"owner"` // the instance delivering it
}

// StreamCursor is where a stream stands: the next batch (chain position)
// to deliver and the last leaf of it already delivered (-1: none).
type StreamCursor struct {
	NextBatchSeq int64 `json:"nextBatchSeq"`
	AfterLeaf    int   `json:"afterLeaf"`
}

// Streams lists the configured log streams (audit.streams); none
// configured: an empty list.
func (c *Client) Streams(ctx context.Context) ([]Stream, error) {
	var out struct {
		Streams []Stream `json:"streams"`
	}
	err := c.request(ctx, subjectStreams, struct{}{}, &out)
	return out.Streams, err
}
