package ports

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// Metrics are the Prometheus metrics the ports record. Names are a public
// contract (docs/operations.md, "Health, metrics and logs").
type Metrics struct {
	Registry *prometheus.Registry

	ingested   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	poisoned   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	batchSize  *prometheus.HistogramVec
	committed  prometheus.Histogram
	pending    *prometheus.GaugeVec

	poisonMessages *prometheus.GaugeVec
	poisonAge      *prometheus.GaugeVec

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	requestsActive  *prometheus.GaugeVec
	requestsWaiting *prometheus.GaugeVec
	lastCheckpoint  prometheus.Gauge
	cleanupTime     prometheus.Gauge
	cleanupDuration prometheus.Gauge
	cleanupDeleted  prometheus.Gauge
	cleanupSuccess  prometheus.Gauge
}

// CodeOK is the code label of a request answered without error in
// auditq_requests_total; the others are the request service's error codes
// (CodeBadRequest, ...).
const CodeOK = "200"

// NewMetrics registers auditq's metrics and the Go and process collectors
// on a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_events_ingested_total", Help: "Events newly stored in audit_logs.",
		}, []string{"handler"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_events_duplicate_total", Help: "Events whose id was already stored (redeliveries, re-publishes); they change nothing.",
		}, []string{"handler"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_events_rejected_total", Help: "Events that failed validation and went to the poison stream.",
		}, []string{"handler"}),
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_messages_poisoned_total", Help: "Messages published to the poison stream.",
		}, []string{"handler"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditq_handler_duration_seconds", Help: "Time to handle one message (for audit.log, one batch of messages), retries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler", "outcome"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditq_write_batch_events", Help: "Events per database transaction: group commits of audit.log events, and bulk jobs.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"writer"}),
		committed: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auditq_event_commit_seconds", Help: "Per event written by the group commit (audit.log and the service's own events): time from its receipt (for a message, its JetStream timestamp: when the stream stored it) to the commit of its row; the ack to JetStream comes after.",
			Buckets: commitBuckets,
		}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_consumer_pending_messages", Help: "Messages waiting in a job consumer, delivered-but-unacked included: the ingest lag.",
		}, []string{"subject"}),
		poisonMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_poison_messages", Help: "Messages in stream AUDIT_POISON, by job (audit.poison.<job>): rejections waiting to be replayed or discarded.",
		}, []string{"job"}),
		poisonAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_poison_oldest_age_seconds", Help: "Age of the oldest message in stream AUDIT_POISON, by job; 0 when it holds none.",
		}, []string{"job"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_requests_total", Help: "Requests answered by the request service, by subject and code (200, or the error code of Nats-Service-Error-Code).",
		}, []string{"subject", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditq_request_duration_seconds", Help: "Time to answer one request, by subject, errors included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"subject"}),
		requestsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_requests_in_flight", Help: "Requests being handled now, by pool (requests, reports, exports); at most AUDITQ_REQUEST_CONCURRENCY, AUDITQ_REQUEST_REPORT_CONCURRENCY and AUDITQ_EXPORT_MAX_RUNNING (an export until it ends).",
		}, []string{"pool"}),
		requestsWaiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_requests_waiting", Help: "Requests waiting for a free slot of their pool now, by pool; one that waits AUDITQ_REQUEST_QUEUE_WAIT is answered 429.",
		}, []string{"pool"}),
		lastCheckpoint: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditq_last_checkpoint_timestamp_seconds", Help: "Unix time of the last signed checkpoint this instance wrote; 0 before the first. Its age: time() - this.",
		}),
		cleanupTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditq_last_cleanup_timestamp_seconds", Help: "Unix time the last cleanup (not a dry run) this instance ran ended, successful or not; 0 before the first.",
		}),
		cleanupDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditq_last_cleanup_duration_seconds", Help: "How long the last cleanup this instance ran took.",
		}),
		cleanupDeleted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditq_last_cleanup_deleted_rows", Help: "Events the last cleanup this instance ran deleted (0 when it failed).",
		}),
		cleanupSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditq_last_cleanup_success", Help: "1 when the last cleanup this instance ran succeeded, 0 when it failed or none ran yet.",
		}),
	}
	reg.MustRegister(m.ingested, m.duplicates, m.rejected, m.poisoned, m.latency, m.batchSize, m.committed, m.pending,
		m.poisonMessages, m.poisonAge,
		m.requests, m.requestDuration, m.requestsActive, m.requestsWaiting, m.lastCheckpoint, m.cleanupTime, m.cleanupDuration, m.cleanupDeleted, m.cleanupSuccess,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every series a dashboard rates exists from the start, at 0, so that
	// a quiet instance shows 0 rather than no data.
	for _, h := range []string{handlerLog, handlerBulk, handlerCleanup, handlerReportGenerate} {
		m.ingested.WithLabelValues(h)
		m.duplicates.WithLabelValues(h)
		m.rejected.WithLabelValues(h)
		m.poisoned.WithLabelValues(h)
		m.latency.WithLabelValues(h, "ok")
	}
	for _, w := range []string{"group-commit", "bulk"} {
		m.batchSize.WithLabelValues(w)
	}
	for _, subj := range contract.RequestSubjects() {
		m.requests.WithLabelValues(subj, CodeOK)
		m.requestDuration.WithLabelValues(subj)
	}
	for _, p := range Pools {
		m.requestsActive.WithLabelValues(p)
		m.requestsWaiting.WithLabelValues(p)
	}
	return m
}

// requestInFlight adds d to the requests in flight of pool. A nil Metrics
// records nothing.
func (m *Metrics) requestInFlight(pool string, d float64) {
	if m == nil {
		return
	}
	m.requestsActive.WithLabelValues(pool).Add(d)
}

// requestWaiting adds d to the requests waiting for pool. A nil Metrics
// records nothing.
func (m *Metrics) requestWaiting(pool string, d float64) {
	if m == nil {
		return
	}
	m.requestsWaiting.WithLabelValues(pool).Add(d)
}

// request records one answered request on subject with its code. A nil
// Metrics records nothing.
func (m *Metrics) request(subject, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(subject, code).Inc()
	m.requestDuration.WithLabelValues(subject).Observe(d.Seconds())
}

// CheckpointWritten records the time of a checkpoint just written. A nil
// Metrics records nothing.
func (m *Metrics) CheckpointWritten(at time.Time) {
	if m == nil {
		return
	}
	m.lastCheckpoint.Set(float64(at.UnixNano()) / 1e9)
}

// cleanupFinished records the outcome of a cleanup that ended at end
// after d: deleted rows, or a failure (err != nil).
func (m *Metrics) cleanupFinished(end time.Time, d time.Duration, deleted int64, err error) {
	if m == nil {
		return
	}
	m.cleanupTime.Set(float64(end.UnixNano()) / 1e9)
	m.cleanupDuration.Set(d.Seconds())
	if err != nil {
		m.cleanupDeleted.Set(0)
		m.cleanupSuccess.Set(0)
		return
	}
	m.cleanupDeleted.Set(float64(deleted))
	m.cleanupSuccess.Set(1)
}

func (m *Metrics) recorded(handler string, r audit.WriteResult) {
	m.ingested.WithLabelValues(handler).Add(float64(r.Inserted))
	m.duplicates.WithLabelValues(handler).Add(float64(r.Duplicates))
}

// commitBuckets are the bounds of auditq_event_commit_seconds: 5 ms steps
// up to 100 ms (the latency target), coarser beyond.
var commitBuckets = []float64{.005, .01, .015, .02, .025, .03, .035, .04, .045, .05, .055, .06, .065, .07, .075, .08, .085, .09, .095, .1,
	.11, .12, .13, .14, .15, .175, .2, .25, .3, .4, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60}

// ObserveCommitted records, for each event of a group commit that
// committed at at, the time since its message was stored in JetStream
// (Event.ReceivedAt); events without a receipt time are left out.
func (m *Metrics) ObserveCommitted(events []audit.Event, at time.Time) {
	for i := range events {
		if r := events[i].ReceivedAt; !r.IsZero() {
			m.committed.Observe(at.Sub(r).Seconds())
		}
	}
}

// ObserveBatch records the size of one database transaction of writer
// ("group-commit" or "bulk").
func (m *Metrics) ObserveBatch(writer string, events int) {
	m.batchSize.WithLabelValues(writer).Observe(float64(events))
}

func (m *Metrics) rejectedEvents(handler string, n int) {
	m.rejected.WithLabelValues(handler).Add(float64(n))
}

func (m *Metrics) poisonedMessage(handler string) { m.poisoned.WithLabelValues(handler).Inc() }

func (m *Metrics) handled(handler string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.latency.WithLabelValues(handler, outcome).Observe(d.Seconds())
}

// SetPending records the backlog of each job subject.
func (m *Metrics) SetPending(pending map[string]uint64) {
	for subj, n := range pending {
		m.pending.WithLabelValues(subj).Set(float64(n))
	}
}

// SetPoison records the poison stream's messages and the age of its
// oldest, per job, as of now: every job of contract.PoisonJobs appears (0 when it
// has none), and so does any other job stats names.
func (m *Metrics) SetPoison(stats map[string]PoisonStat, now time.Time) {
	m.poisonMessages.Reset()
	m.poisonAge.Reset()
	for job := range contract.PoisonJobs() {
		m.poisonMessages.WithLabelValues(job).Set(0)
		m.poisonAge.WithLabelValues(job).Set(0)
	}
	for job, st := range stats {
		m.poisonMessages.WithLabelValues(job).Set(float64(st.Messages))
		age := 0.0
		if st.Messages > 0 && !st.Oldest.IsZero() {
			age = max(now.Sub(st.Oldest).Seconds(), 0)
		}
		m.poisonAge.WithLabelValues(job).Set(age)
	}
}
