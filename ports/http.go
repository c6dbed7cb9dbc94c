package ports

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition; nil means ready.
type Check func(ctx context.Context) error

// Backlog returns, per job subject, the messages waiting for the service;
// on error, those it could read.
type Backlog func(ctx context.Context) (map[string]uint64, error)

// PoisonStat is one job's share of the poison stream.
type PoisonStat struct {
	Messages uint64
	Oldest   time.Time // when its oldest message was stored
}

// PoisonBacklog returns, per job of the poison stream (audit.poison.<job>),
// its messages and the oldest one's time.
type PoisonBacklog func(ctx context.Context) (map[string]PoisonStat, error)

// NewHTTPHandler serves /healthz (the process is alive), /readyz (every
// check passes: 200, else 503 with the failing checks), /schema/<name>.json
// (the JSON Schemas of the contract) and /metrics, whose
// backlog gauge is refreshed from backlog, and whose poison gauges from
// poison (unless nil), before each scrape; and, unless console is nil,
// the admin console at / and /console/ (ports/console).
func NewHTTPHandler(m *Metrics, checks map[string]Check, backlog Backlog, poison PoisonBacklog, console http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		names := make([]string, 0, len(checks))
		for n := range checks {
			names = append(names, n)
		}
		sort.Strings(names)
		status, result := http.StatusOK, map[string]string{}
		for _, n := range names {
			if err := checks[n](ctx); err != nil {
				status, result[n] = http.StatusServiceUnavailable, err.Error()
			} else {
				result[n] = "ok"
			}
		}
		writeJSON(w, status, result)
	})
	mux.Handle("GET /schema/", schemaHandler())
	if console != nil {
		mux.Handle("GET /{$}", console)
		mux.Handle("GET /console/", console)
	}
	metrics := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		pending, _ := backlog(ctx) // a subject it cannot read keeps its last value
		cancel()
		m.SetPending(pending)
		if poison != nil {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			stats, err := poison(ctx)
			cancel()
			if err == nil { // else the gauges keep their last values
				m.SetPoison(stats, time.Now())
			}
		}
		metrics.ServeHTTP(w, r)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WithProfiles serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/ and everything else through h.
func WithProfiles(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
