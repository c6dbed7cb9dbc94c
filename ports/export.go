package ports

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// ExportConfig configures the streaming of exports (audit.export). Zero
// fields mean the defaults of AUDITQ_EXPORT_*: 256 KiB chunks, a window
// of 8, 30 s without acknowledgement, 4 exports at once.
type ExportConfig struct {
	// ChunkBytes is the size a chunk is sent at (it may exceed it by one
	// event); at most half the connection's max payload is used.
	ChunkBytes int
	// Window is how many chunks are sent ahead of the last acknowledged.
	Window int
	// AckTimeout ends an export whose client acknowledged nothing for this
	// long.
	AckTimeout time.Duration
	// MaxRunning bounds the exports running at once per instance.
	MaxRunning int
}

func (c *ExportConfig) setDefaults() {
	if c.ChunkBytes == 0 {
		c.ChunkBytes = 256 << 10
	}
	if c.Window == 0 {
		c.Window = 8
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.MaxRunning == 0 {
		c.MaxRunning = 4
	}
}

// Validate names a setting out of range.
func (c ExportConfig) Validate() error {
	if c.ChunkBytes < 1024 || c.Window < 1 || c.AckTimeout <= 0 || c.MaxRunning < 1 {
		return fmt.Errorf("requests: export needs ChunkBytes >= 1024, Window >= 1, AckTimeout > 0 and MaxRunning >= 1, got %+v", c)
	}
	return nil
}

// exportEndpoint answers audit.export. An export is a request of pool
// PoolExports (AUDITQ_EXPORT_MAX_RUNNING slots), bounded like the other
// pools: in a goroutine of its own it waits up to QueueWait for a slot
// (or is answered CodeBusy), checks the request and records the start of
// the export within the request deadline, then streams the export,
// holding the slot until the export ends.
func (r *Requests) exportEndpoint() micro.Handler {
	p := r.pools[PoolExports]
	return micro.HandlerFunc(func(m micro.Request) {
		start := time.Now()
		if !r.enter() {
			respondError(m, CodeStopping, "auditq is shutting down; retry the request", "")
			r.cfg.Metrics.request(contract.SubjectExport, CodeStopping, time.Since(start))
			return
		}
		if m.Reply() == "" {
			r.inFlight.Done()
			r.cfg.Metrics.request(contract.SubjectExport, CodeBadRequest, time.Since(start))
			return // nowhere to send it
		}
		// The goroutine answers on the connection, never through m (see
		// endpointIn).
		req := reply{nc: r.nc, subject: m.Reply()}
		data, headers := m.Data(), m.Headers()
		go func() {
			code, streaming := CodeOK, false
			defer func() {
				r.cfg.Metrics.request(contract.SubjectExport, code, time.Since(start))
				if !streaming {
					r.inFlight.Done()
				}
			}()
			wait, cancelWait := context.WithTimeout(context.Background(), r.cfg.Timeout)
			defer cancelWait()
			release, c := r.take(wait, p, req)
			if release == nil {
				code = c
				return
			}
			var in query.ExportRequest
			if err := DecodeRequest(data, &in); err != nil {
				release()
				code = r.fail(req, contract.SubjectExport, err)
				return
			}
			// The start is recorded within the deadline, and not once the
			// service stops.
			ctx, cancel := context.WithTimeout(r.exportCtx, r.cfg.Timeout)
			defer cancel()
			x, err := asBound(r, requester(headers, r.cfg.Identity), contract.SubjectExport, in, func(who query.Requester) (*query.Export, error) {
				return r.app.Queries.Export.Start(ctx, in, who)
			})
			if err != nil {
				release()
				code = r.fail(req, contract.SubjectExport, err)
				return
			}
			// From here the export is counted in exportsRunning, which
			// Stop waits for, instead of inFlight.
			r.exportsRunning.Add(1)
			r.inFlight.Done()
			streaming = true
			go func() {
				defer r.exportsRunning.Done()
				defer release()
				r.stream(x, req.subject)
			}()
		}()
	})
}

// session is one export being streamed to its client.
type session struct {
	r       *Requests
	x       *query.Export
	reply   string
	ackSubj string
	window  uint64
	chunk   int

	acked  atomic.Uint64 // the highest chunk acknowledged
	signal chan struct{} // an acknowledgement arrived
	cancel context.CancelFunc

	seq     uint64 // chunks sent
	events  int    // events in the chunks sent
	bytes   int64
	cursor  string // after the last event sent
	hash    hashWriter
	pending int         // events encoded, not sent
	last    audit.Event // the last event encoded
}

type hashWriter interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

// stream sends export x to reply: chunks of about ChunkBytes, each sent
// only while fewer than Window are unacknowledged, then the final summary.
// It stops when the client acknowledges nothing for AckTimeout, cancels,
// or the service stops, and records how the export ended.
func (r *Requests) stream(x *query.Export, reply string) {
	ctx, cancel := context.WithCancel(r.exportCtx)
	defer cancel()
	s := &session{
		r: r, x: x, reply: reply, ackSubj: contract.ExportAckPrefix + x.ID, window: uint64(r.cfg.Export.Window),
		chunk: min(r.cfg.Export.ChunkBytes, int(r.nc.MaxPayload()/2)), signal: make(chan struct{}, 1), cancel: cancel,
		hash: sha256.New(),
	}
	log := r.cfg.Logger.With("export", x.ID)
	sub, err := r.nc.Subscribe(s.ackSubj, s.onAck)
	if err != nil {
		s.end(ctx, log, fmt.Errorf("subscribe %s: %w", s.ackSubj, err))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := r.nc.Flush(); err != nil { // the subscription is in place before the first chunk
		s.end(ctx, log, fmt.Errorf("subscribe %s: %w", s.ackSubj, err))
		return
	}
	s.end(ctx, log, s.run(ctx))
}

// onAck takes an acknowledgement: the sequence number of a chunk written,
// or ExportCancel.
func (s *session) onAck(m *nats.Msg) {
	if string(m.Data) == contract.ExportCancel {
		s.cancel()
		return
	}
	n, err := strconv.ParseUint(string(m.Data), 10, 64)
	if err != nil {
		return
	}
	for {
		cur := s.acked.Load()
		if n <= cur || s.acked.CompareAndSwap(cur, n) {
			break
		}
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// run reads the pages and sends the chunks; nil when every event was
// sent. The next page is read while the current one is encoded and sent
// (at most two pages are held).
func (s *session) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := s.prefetch(ctx)
	enc := contract.NewExportEncoder(s.x.Format, contract.ExportEncoding{Header: !s.x.Resumed, Raw: s.x.CSVRaw, Tenant: s.r.cfg.Tenants.Enabled})
	for p := range pages {
		if p.err != nil && ctx.Err() != nil {
			return s.stopReason()
		}
		if p.err != nil {
			return p.err
		}
		for _, e := range p.events {
			if err := enc.Add(contract.ViewOf(e)); err != nil {
				return fmt.Errorf("encode event %s: %w", e.ID, err)
			}
			s.pending++
			s.last = e
			if enc.Len() >= s.chunk {
				if err := s.send(ctx, enc); err != nil {
					return err
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return s.stopReason()
	}
	if enc.Len() > 0 {
		return s.send(ctx, enc)
	}
	return nil
}

// page is one page read by prefetch, or the error that ended the reads.
type page struct {
	events []audit.Event
	err    error
}

// prefetch reads the pages of the export one ahead of their sending, in
// a goroutine that ends with ctx or after the last page, closing the
// channel.
func (s *session) prefetch(ctx context.Context) <-chan page {
	out := make(chan page, 1)
	go func() {
		defer close(out)
		for {
			pctx, cancel := context.WithTimeout(ctx, s.r.cfg.Timeout)
			events, err := s.x.Next(pctx)
			cancel()
			if len(events) == 0 && err == nil {
				return
			}
			select {
			case out <- page{events: events, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// stopReason says why ctx ended: the service stopping, or the client's
// cancel.
func (s *session) stopReason() error {
	if s.r.exportCtx.Err() != nil {
		return query.ExportStopped{Reason: "auditq is shutting down"}
	}
	return query.ExportStopped{Reason: "cancelled by the client"}
}

// send waits for room in the window, then publishes what enc holds as the
// next chunk.
func (s *session) send(ctx context.Context, enc *contract.ExportEncoder) error {
	next := s.seq + 1
	timer := time.NewTimer(s.r.cfg.Export.AckTimeout)
	defer timer.Stop()
	for next > s.acked.Load()+s.window {
		select {
		case <-s.signal:
			timer.Reset(s.r.cfg.Export.AckTimeout)
		case <-ctx.Done():
			return s.stopReason()
		case <-timer.C:
			return query.ExportStopped{Reason: fmt.Sprintf("no acknowledgement for %s", s.r.cfg.Export.AckTimeout)}
		}
	}
	body := enc.Take()
	m := s.message(next)
	m.Data = body
	m.Header.Set(contract.HeaderExportEvents, strconv.Itoa(s.pending))
	m.Header.Set(contract.HeaderExportAck, s.ackSubj)
	m.Header.Set(contract.HeaderExportWindow, strconv.FormatUint(s.window, 10))
	cursor := s.cursor
	if s.pending > 0 {
		cursor = s.x.CursorAfter(s.last)
		m.Header.Set(contract.HeaderExportCursor, cursor)
	}
	if err := s.r.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("send chunk %d (%d bytes): %w", next, len(body), err)
	}
	_, _ = s.hash.Write(body)
	s.seq, s.events, s.bytes, s.cursor, s.pending = next, s.events+s.pending, s.bytes+int64(len(body)), cursor, 0
	return nil
}

// message returns the next message of the export, numbered seq.
func (s *session) message(seq uint64) *nats.Msg {
	m := nats.NewMsg(s.reply)
	m.Header.Set(contract.HeaderExportID, s.x.ID)
	m.Header.Set(contract.HeaderExportSeq, strconv.FormatUint(seq, 10))
	return m
}

// end sends the final message, the summary or an error answer carrying
// the cursor, and records the end of the export.
func (s *session) end(ctx context.Context, log *slog.Logger, runErr error) {
	m := s.message(s.seq + 1)
	sum := hex.EncodeToString(s.hash.Sum(nil))
	if runErr == nil {
		body, _ := json.Marshal(contract.ExportSummary{
			ExportID: s.x.ID, Format: s.x.Format, Events: s.events, Chunks: int(s.seq), Bytes: s.bytes,
			SHA256: sum, Cursor: contract.Nullable(s.cursor),
		})
		m.Header.Set(contract.HeaderExportStatus, contract.ExportDone)
		m.Data = body
	} else {
		code, msg := CodeInternal, "internal error"
		var stopped query.ExportStopped
		switch {
		case errors.As(runErr, &stopped) && s.r.exportCtx.Err() != nil:
			code, msg = CodeStopping, "auditq is shutting down; resume the export with its cursor"
		case errors.As(runErr, &stopped):
			code, msg = CodeTimeout, "export "+stopped.Error()
			log.Warn("export stopped", "reason", stopped.Reason, "events", s.events)
		default:
			log.Error("export failed", "err", runErr, "events", s.events)
		}
		if s.cursor != "" {
			m.Header.Set(contract.HeaderExportCursor, s.cursor)
		}
		body, _ := json.Marshal(struct {
			Code  string `json:"code"`
			Error string `json:"error"`
		}{code, msg})
		m.Header.Set(micro.ErrorCodeHeader, code)
		m.Header.Set(micro.ErrorHeader, msg)
		m.Data = body
	}
	if err := s.r.nc.PublishMsg(m); err != nil {
		log.Warn("export: final message not sent", "err", err)
	}
	out := query.ExportOutcome{Returned: s.events, Cursor: s.cursor, Complete: runErr == nil, Err: runErr}
	if runErr == nil {
		out.SHA256 = sum
	}
	if err := s.x.Finish(ctx, out); err != nil {
		log.Error("export delivered but its end not recorded (its start is)", "err", err)
	}
}
