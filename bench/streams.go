package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditq/auditq/ports/streams"
)

// benchSecret keys the benchmark webhook's signatures.
const benchSecret = "auditq-bench-webhook-secret"

// hookReceiver is the webhook the -streams run delivers to: it checks
// each request's signature and counts the events (seals) it carried,
// without decoding them, so that its own CPU time stays small beside the
// service's.
type hookReceiver struct {
	srv    *http.Server
	url    string
	events atomic.Int64
	bad    atomic.Int64
}

func newHookReceiver() (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hookReceiver{url: "http://" + ln.Addr().String() + "/hook"}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		ts := r.Header.Get(streams.HeaderTimestamp)
		if err != nil || !hmac.Equal([]byte(r.Header.Get(streams.HeaderSignature)), []byte(streams.Sign([]byte(benchSecret), ts, body))) {
			h.bad.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.events.Add(int64(bytes.Count(body, []byte(`"seal":`))))
		w.WriteHeader(http.StatusNoContent)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

func (h *hookReceiver) close() { _ = h.srv.Shutdown(context.Background()) }

// streamsEnv writes the streams file of the -streams run (the webhook h
// and an NDJSON file stream under dir) and returns the service's
// variables for it.
func streamsEnv(h *hookReceiver, dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	b, err := json.Marshal(map[string]any{"streams": []map[string]any{
		{"name": "bench-hook", "sink": "webhook", "url": h.url, "secret": benchSecret},
		{"name": "bench-file", "sink": "file", "path": dir},
	}})
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "streams.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	return map[string]string{"AUDITQ_STREAMS_FILE": p}, nil
}

// waitDelivered waits until the webhook got want events (up to timeout)
// and returns how long that took.
func waitDelivered(ctx context.Context, h *hookReceiver, want int64, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for h.events.Load() < want {
		if time.Since(start) > timeout {
			return time.Since(start), errors.New("bench: the webhook stream did not catch up")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := h.bad.Load(); n > 0 {
		return 0, errors.New("bench: webhook requests with a bad signature")
	}
	return time.Since(start), nil
}

// rowsOf counts the sealed rows of dbURL: what the streams deliver (rows
// a prefill COPYed in carry no seal and are not streamed).
func rowsOf(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(ctx) }()
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM audit_logs WHERE seal_batch IS NOT NULL").Scan(&n)
	return n, err
}
