// Package bench is auditq's end-to-end benchmark ("auditq bench"): a client
// that drives the service from outside. It starts "auditq serve" as a child
// process (package e2e/harness, as the damage tests do) on an embedded NATS
// and a scratch database, publishes events the way other services would,
// waits until every row is committed and reports throughput, latency,
// memory and disk, against the system we replaced (the seed design) and a
// plain pipeline without any framework, measured in the same run.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/e2e/harness"
)

// Options are the benchmark's flags.
type Options struct {
	AdminURL     string // server on which the scratch database is created
	Events       int    // events per throughput run
	BaseEvents   int    // events for the seed-design baseline (it is slow)
	Prefill      int    // rows in the table before measuring
	Concurrency  int    // AUDITQ_CONCURRENCY of the measured service; 0 keeps the defaults
	LatencyRate  int    // offered events/s for the latency run
	LatencyFor   time.Duration
	LatencyWarm  time.Duration
	SkipBaseline bool
	SkipPlain    bool
	SkipNoSeal   bool          // do not measure the service with tamper evidence off
	AA           bool          // the second service has tamper evidence on too (A/A)
	Streams      bool          // the second service has evidence on and two log streams
	Swap         bool          // the evidence-off service takes the first position
	BothOrders   bool          // a run without Swap, then one with it, combined
	Rounds       int           // throughput measurements per service; medians are reported
	Settle       time.Duration // longest wait for a quiet machine before each measurement
	Keep         bool          // keep the scratch database
	ExternalNATS bool          // each service on a nats-server in the benchmark's process, not its embedded one
	Pprof        bool          // each service serves its runtime profiles (AUDITQ_PPROF=on)
	// PersonalData is the AUDITQ_PERSONAL_DATA of the first service
	// (pseudonymise or encrypt, with a fresh key-encryption key); the
	// second then has tamper evidence on and personal data off, so the
	// ratios compare personal data handling on and off. "" or off: unused.
	PersonalData string
	Binary       string
	Viewers      int           // > 0: only the concurrent-viewers measurement, with this many viewers
	ViewersFor   time.Duration // length of each viewers run
}

// Run parses args, runs the benchmark and prints a table and a JSON line.
func Run(ctx context.Context, binary string, args []string, out io.Writer) error {
	o := Options{Binary: binary}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		say(out, "Usage: auditq bench [flags]\n\nStarts auditq serve on scratch databases and measures it against the seed design and a plain pipeline\n(docs/performance.md). Flags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.AdminURL, "admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server for the scratch database")
	fs.IntVar(&o.Events, "events", 200000, "events per throughput run")
	fs.IntVar(&o.Rounds, "rounds", 3, "throughput measurements (singles and bulk) per service, alternating with the evidence-off service; the medians are reported")
	fs.DurationVar(&o.Settle, "settle", 2*time.Minute, "before each throughput measurement, wait up to this long until the machine has been under 10 % busy for a second (0: do not wait)")
	fs.IntVar(&o.BaseEvents, "baseline-events", 20000, "events for the seed-design baseline run")
	fs.IntVar(&o.Prefill, "prefill", 0, "rows COPYed into the table before measuring (e.g. 10000000)")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "AUDITQ_CONCURRENCY of the measured service (AUDITQ_MAX_ACK_PENDING twice that); 0: the service's defaults, as users run it")
	fs.IntVar(&o.LatencyRate, "latency-rate", 0, "offered events/s in the latency run; 0: half of the singles capacity measured just before it (a probe of -events singles)")
	fs.DurationVar(&o.LatencyFor, "latency-for", 10*time.Second, "length of the latency run")
	fs.DurationVar(&o.LatencyWarm, "latency-warmup", 5*time.Second, "offered load before the latency run, at its rate, not measured")
	fs.BoolVar(&o.SkipBaseline, "skip-baseline", false, "do not measure the seed-design baseline")
	fs.BoolVar(&o.SkipPlain, "skip-plain", false, "do not measure the plain no-framework pipeline")
	fs.BoolVar(&o.SkipNoSeal, "skip-evidence-off", false, "do not measure the service with AUDITQ_TAMPER_EVIDENCE=off (its own scratch database, prefilled alike)")
	fs.BoolVar(&o.AA, "aa", false, "an A/A run: the second service has tamper evidence on too, so the on/off figures size the benchmark's own bias and noise")
	fs.BoolVar(&o.Streams, "streams", false, "the second service has tamper evidence on too and two active log streams (a signed webhook the benchmark receives, and an NDJSON file): the on/off figures become ingest with two streams vs without")
	fs.BoolVar(&o.Swap, "swap", false, "swap positions: the evidence-off service is set up, loaded and measured first (the evidence-on one still gives latency, reports, disk and cleanup); a run with and one without it cancel the benchmark's bias of position")
	fs.BoolVar(&o.BothOrders, "both-orders", false, "run twice, without and then with -swap (seed baseline and plain pipeline in the second run only), and report the on/off ratios of both combined (geometric mean)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the scratch database")
	fs.BoolVar(&o.ExternalNATS, "external-nats", false, "run each service against a nats-server of its own in the benchmark's process (AUDITQ_NATS_URL) instead of its embedded one: peak RSS and CPU per event are then the service's alone")
	fs.BoolVar(&o.Pprof, "pprof", false, "each service serves Go's runtime profiles (AUDITQ_PPROF=on) at the /debug/pprof/ address printed when it starts, for profiling it during the rounds")
	fs.StringVar(&o.PersonalData, "personal-data", "off", "AUDITQ_PERSONAL_DATA of the first service: pseudonymise or encrypt (with a fresh AUDITQ_KEK_FILE); the second service then runs with tamper evidence on and personal data off, and the on/off ratios compare personal data handling (docs/personal-data.md)")
	fs.IntVar(&o.Viewers, "viewers", 0, "run only the concurrent-viewers measurement: this many viewers (e.g. 20) search back to back while 90-day reports run, against the service's defaults, then serial serving, then the defaults again, on a table of -prefill rows")
	fs.DurationVar(&o.ViewersFor, "viewers-for", 20*time.Second, "length of each run of -viewers")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.Rounds < 1 || o.Events < 1 {
		return errors.New("bench: -rounds and -events must be at least 1")
	}
	switch o.PersonalData {
	case "off":
		o.PersonalData = ""
	case "", "pseudonymise", "encrypt":
	default:
		return fmt.Errorf("bench: -personal-data must be off, pseudonymise or encrypt, got %q", o.PersonalData)
	}
	if o.PersonalData != "" && (o.SkipNoSeal || o.AA) {
		return errors.New("bench: -personal-data compares with the second service: it excludes -skip-evidence-off and -aa")
	}
	if o.PersonalData != "" && o.Streams {
		return errors.New("bench: -personal-data and -streams each compare with the second service: run them apart")
	}
	if o.Viewers > 0 {
		return runViewers(ctx, o, out)
	}
	if !o.BothOrders || o.SkipNoSeal {
		r, err := run(ctx, o, out)
		if err != nil {
			return err
		}
		return r.print(out)
	}
	first := o
	first.Swap, first.SkipBaseline, first.SkipPlain = false, true, true
	say(out, "first run: the evidence-on service in the first position\n")
	r1, err := run(ctx, first, out)
	if err != nil {
		return err
	}
	if err := r1.print(out); err != nil {
		return err
	}
	o.Swap = true
	say(out, "second run: positions swapped\n")
	r2, err := run(ctx, o, out)
	if err != nil {
		return err
	}
	r2.BothSingle = math.Sqrt(r1.SealSingle * r2.SealSingle)
	r2.BothBulk = math.Sqrt(r1.SealBulk * r2.SealBulk)
	return r2.print(out)
}

// Result is one benchmark run; its JSON form is the last line printed.
type Result struct {
	Prefill         int                `json:"prefill"`
	AA              bool               `json:"aa,omitempty"`
	PersonalData    string             `json:"personal_data,omitempty"` // of the first service; the second has it off
	Streams         bool               `json:"streams,omitempty"`
	StreamsSingle   float64            `json:"ratio_single_two_streams_vs_none,omitempty"`
	StreamsBulk     float64            `json:"ratio_bulk_two_streams_vs_none,omitempty"`
	StreamsCatchUp  float64            `json:"streams_catch_up_seconds,omitempty"`
	Swap            bool               `json:"swap,omitempty"`
	ExternalNATS    bool               `json:"external_nats,omitempty"` // peak RSS and service CPU without the NATS server
	Events          int                `json:"events"`
	Concurrency     int                `json:"concurrency"` // 0: the service's defaults
	Rounds          int                `json:"rounds"`
	SinglePerSec    float64            `json:"single_events_per_sec"`
	BulkPerSec      float64            `json:"bulk_events_per_sec"`
	BaselinePerSec  float64            `json:"seed_baseline_events_per_sec,omitempty"`
	PlainPerSec     float64            `json:"plain_pipeline_events_per_sec,omitempty"` // median of its rounds
	SingleRounds    []float64          `json:"single_events_per_sec_rounds,omitempty"`
	PlainRounds     []float64          `json:"plain_pipeline_events_per_sec_rounds,omitempty"`
	VsPlainRounds   []float64          `json:"ratio_vs_plain_pipeline_rounds,omitempty"`  // each round's singles / its plain measurement
	PlainCPU        *CPUPerEvent       `json:"plain_pipeline_cpu_us_per_event,omitempty"` // serve and publisher: the benchmark process, which runs it
	LatencyOffered  int                `json:"latency_offered_per_sec"`
	LatencyProbe    float64            `json:"latency_probe_events_per_sec,omitempty"`
	LatencyP50Ms    float64            `json:"latency_p50_ms"`
	LatencyP99Ms    float64            `json:"latency_p99_ms"`
	LatencyMaxMs    float64            `json:"latency_max_ms"`
	StreamAckP50Ms  float64            `json:"latency_stream_ack_p50_ms"`
	StreamAckP99Ms  float64            `json:"latency_stream_ack_p99_ms"`
	StreamAckMaxMs  float64            `json:"latency_stream_ack_max_ms"`
	CommitEvents    int64              `json:"latency_commit_events,omitempty"`
	CommitP50Ms     float64            `json:"latency_stored_commit_p50_ms,omitempty"`
	CommitP99Ms     float64            `json:"latency_stored_commit_p99_ms,omitempty"`
	CommitMaxMs     float64            `json:"latency_stored_commit_max_bucket_ms,omitempty"`
	PeakRSSMB       float64            `json:"peak_rss_mb"`
	BytesPerEvent   float64            `json:"bytes_per_event"`
	VsBaseline      float64            `json:"ratio_vs_seed_baseline,omitempty"`
	VsPlain         float64            `json:"ratio_vs_plain_pipeline,omitempty"` // median singles / median plain
	NoSealSingle    float64            `json:"evidence_off_single_events_per_sec,omitempty"`
	NoSealBulk      float64            `json:"evidence_off_bulk_events_per_sec,omitempty"`
	SealSingle      float64            `json:"ratio_single_evidence_on_off,omitempty"`
	SealBulk        float64            `json:"ratio_bulk_evidence_on_off,omitempty"`
	BothSingle      float64            `json:"ratio_single_evidence_on_off_both_orders,omitempty"`
	BothBulk        float64            `json:"ratio_bulk_evidence_on_off_both_orders,omitempty"`
	SingleCPU       CPUPerEvent        `json:"single_cpu_us_per_event"`
	BulkCPU         CPUPerEvent        `json:"bulk_cpu_us_per_event"`
	NoSealSingleCPU *CPUPerEvent       `json:"evidence_off_single_cpu_us_per_event,omitempty"`
	NoSealBulkCPU   *CPUPerEvent       `json:"evidence_off_bulk_cpu_us_per_event,omitempty"`
	ReportsMs       map[string]float64 `json:"report_p99_ms,omitempty"`
	ReportsLoaded   map[string]float64 `json:"report_p99_ms_after_ingest,omitempty"`
	CleanupDays     int                `json:"cleanup_retention_days"`
	CleanupDeleted  int64              `json:"cleanup_deleted_rows"`
	CleanupMs       float64            `json:"cleanup_ms"`
}

// print writes the table and then the JSON line; it returns the first
// write error.
func (r Result) print(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	say(tw, "measure\tvalue\n")
	say(tw, "table rows before (prefill)\t%d\n", r.Prefill)
	say(tw, "throughput: median of rounds\t%d\n", r.Rounds)
	if r.Concurrency > 0 {
		say(tw, "measured with AUDITQ_CONCURRENCY\t%d\n", r.Concurrency)
	} else {
		say(tw, "measured with\tthe service's defaults\n")
	}
	say(tw, "audit.log singles, events/s\t%.0f\n", r.SinglePerSec)
	say(tw, "audit.bulk (1,000 per message), events/s\t%.0f\n", r.BulkPerSec)
	if r.BaselinePerSec > 0 {
		say(tw, "seed-design baseline, events/s\t%.0f\n", r.BaselinePerSec)
		say(tw, "singles vs seed baseline\t%.1fx\n", r.VsBaseline)
	}
	second, ratio := "tamper evidence off", "tamper evidence on vs off"
	switch {
	case r.AA:
		second, ratio = "A/A: second service, evidence on too", "A/A: first vs second service"
	case r.PersonalData != "":
		second, ratio = "personal data off (second service, evidence on)", "personal data "+r.PersonalData+" vs off"
	}
	if r.Streams {
		second, ratio = "with two log streams (webhook + file)", "no streams vs two streams"
	}
	if r.NoSealSingle > 0 {
		say(tw, "%s: singles / bulk, events/s\t%.0f / %.0f\n", second, r.NoSealSingle, r.NoSealBulk)
		say(tw, "%s: singles / bulk\t%.2fx / %.2fx\n", ratio, r.SealSingle, r.SealBulk)
	}
	if r.StreamsSingle > 0 {
		say(tw, "two log streams vs none: singles / bulk\t%.2fx / %.2fx\n", r.StreamsSingle, r.StreamsBulk)
		say(tw, "webhook stream caught up after the last round in\t%.1f s\n", r.StreamsCatchUp)
	}
	if r.BothSingle > 0 {
		say(tw, "%s, both runs (geometric mean): singles / bulk\t%.2fx / %.2fx\n", ratio, r.BothSingle, r.BothBulk)
		if r.Streams {
			say(tw, "two log streams vs none, both runs (geometric mean): singles / bulk\t%.2fx / %.2fx\n", 1/r.BothSingle, 1/r.BothBulk)
		}
	}
	say(tw, "CPU per event, singles: serve / postgres / publisher\t%s\n", r.SingleCPU)
	say(tw, "CPU per event, bulk: serve / postgres / publisher\t%s\n", r.BulkCPU)
	if r.NoSealSingleCPU != nil {
		say(tw, "CPU per event, %s, singles: serve / postgres / publisher\t%s\n", second, r.NoSealSingleCPU)
		say(tw, "CPU per event, %s, bulk: serve / postgres / publisher\t%s\n", second, r.NoSealBulkCPU)
	}
	if r.PlainPerSec > 0 {
		say(tw, "plain no-framework pipeline (every round, next to the singles), events/s\t%.0f\n", r.PlainPerSec)
		say(tw, "singles vs plain pipeline (medians)\t%.2fx\n", r.VsPlain)
		say(tw, "singles vs plain pipeline, each round\t%s\n", ratios(r.VsPlainRounds))
		say(tw, "CPU per event, plain pipeline: postgres / the benchmark process running it\t%.1f / %.1f us\n", r.PlainCPU.Postgres, r.PlainCPU.Serve)
	}
	if r.LatencyProbe > 0 {
		say(tw, "capacity probe before the latency run (singles)\t%.0f events/s\n", r.LatencyProbe)
	}
	say(tw, "latency publish->committed at %d/s: p50 / p99 / max\t%.1f / %.1f / %.1f ms\n", r.LatencyOffered, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
	say(tw, "  publish->stream ack, per event: p50 / p99 / max\t%.1f / %.1f / %.1f ms\n", r.StreamAckP50Ms, r.StreamAckP99Ms, r.StreamAckMaxMs)
	if r.CommitEvents > 0 {
		say(tw, "  stored->row committed, per event (service's %s, %d events): p50 / p99 / max bucket\t%.1f / %.1f / <= %.0f ms\n",
			commitMetric, r.CommitEvents, r.CommitP50Ms, r.CommitP99Ms, r.CommitMaxMs)
	}
	if r.ExternalNATS {
		say(tw, "peak RSS of auditq serve (external NATS)\t%.0f MB\n", r.PeakRSSMB)
	} else {
		say(tw, "peak RSS of auditq serve\t%.0f MB\n", r.PeakRSSMB)
	}
	say(tw, "disk per stored event (whole database: rows, indexes, seals, rollups)\t%.0f bytes\n", r.BytesPerEvent)
	names := make([]string, 0, len(r.ReportsMs))
	for n := range r.ReportsMs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		say(tw, "report %s, p99 of 20: before / after the ingest runs\t%.1f / %.1f ms\n", n, r.ReportsMs[n], r.ReportsLoaded[n])
	}
	say(tw, "cleanup (retentionDays %d): rows deleted, publish->result\t%d in %.0f ms\n", r.CleanupDays, r.CleanupDeleted, r.CleanupMs)
	if err := tw.Flush(); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(line))
	return err
}

// say writes one progress line of the benchmark. A failed write is not
// an error of the measurement: the result's own print reports its errors.
func say(w io.Writer, format string, a ...any) {
	_, _ = fmt.Fprintf(w, format, a...)
}

func run(ctx context.Context, o Options, out io.Writer) (Result, error) {
	res := Result{Prefill: o.Prefill, AA: o.AA && !o.SkipNoSeal && !o.Streams, Streams: o.Streams && !o.SkipNoSeal, Swap: o.Swap && !o.SkipNoSeal, Events: o.Events, Concurrency: o.Concurrency,
		PersonalData: o.PersonalData, ExternalNATS: o.ExternalNATS}
	dbURL, drop, err := harness.ScratchDatabase(ctx, o.AdminURL, scratchPrefix)
	if err != nil {
		return res, err
	}
	if !o.Keep {
		defer func() { _ = drop() }()
	}
	dataDir, err := os.MkdirTemp("", "auditq-bench-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(dataDir) }()

	fast := map[string]string{}
	if o.Pprof {
		fast["AUDITQ_PPROF"] = "on"
	}
	if o.Concurrency > 0 {
		fast["AUDITQ_CONCURRENCY"] = strconv.Itoa(o.Concurrency)
		fast["AUDITQ_MAX_ACK_PENDING"] = strconv.Itoa(max(o.Concurrency*2, 1000))
	}
	// The services in the order of their positions: the first is set up,
	// prefilled and loaded first and goes first in odd rounds. The
	// evidence-on service is the one measured for latency, reports, disk
	// and cleanup whatever its position.
	type spec struct {
		name, dbURL, dir string
		env              map[string]string
	}
	first, firstName := maps.Clone(fast), "evidence on"
	if o.PersonalData != "" {
		kek := make([]byte, 32)
		_, _ = rand.Read(kek)
		first["AUDITQ_KEK_FILE"] = filepath.Join(dataDir, "kek")
		if err := os.WriteFile(first["AUDITQ_KEK_FILE"], []byte(hex.EncodeToString(kek)), 0o600); err != nil {
			return res, err
		}
		first["AUDITQ_PERSONAL_DATA"] = o.PersonalData
		firstName = "evidence on, personal data " + o.PersonalData
	}
	specs := []spec{{firstName, dbURL, "on", first}}
	var hook *hookReceiver // the -streams run's webhook
	if !o.SkipNoSeal {
		offDB, dropOff, err := harness.ScratchDatabase(ctx, o.AdminURL, scratchPrefix)
		if err != nil {
			return res, err
		}
		if !o.Keep {
			defer func() { _ = dropOff() }()
		}
		name, env := "evidence off", map[string]string{"AUDITQ_TAMPER_EVIDENCE": "off"}
		switch {
		case res.AA:
			name, env["AUDITQ_TAMPER_EVIDENCE"] = "evidence on (second)", "on"
		case o.PersonalData != "":
			name, env["AUDITQ_TAMPER_EVIDENCE"] = "evidence on, personal data off (second)", "on"
		}
		if res.Streams {
			if hook, err = newHookReceiver(); err != nil {
				return res, err
			}
			defer hook.close()
			senv, err := streamsEnv(hook, filepath.Join(dataDir, "streams"))
			if err != nil {
				return res, err
			}
			name, env["AUDITQ_TAMPER_EVIDENCE"] = "evidence on, two log streams", "on"
			maps.Copy(env, senv)
		}
		for k, v := range fast {
			env[k] = v
		}
		specs = append(specs, spec{name, offDB, "second", env})
	}
	onAt := 0
	if res.Swap {
		specs[0], specs[1], onAt = specs[1], specs[0], 1
	}
	targets := make([]*target, len(specs))
	for i, sp := range specs {
		if o.ExternalNATS {
			srv, err := harness.StartNATS(harness.NATSConfig{StoreDir: filepath.Join(dataDir, sp.dir+"-nats")})
			if err != nil {
				return res, err
			}
			defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
			sp.env = maps.Clone(sp.env)
			sp.env["AUDITQ_NATS_URL"] = srv.ClientURL()
		}
		say(out, "service %d, %s, on a scratch database of its own:\n", i+1, sp.name)
		t, err := setUp(ctx, o, sp.name, sp.dbURL, filepath.Join(dataDir, sp.dir), sp.env, out)
		if err != nil {
			return res, err
		}
		defer t.close()
		targets[i] = t
	}
	on := targets[onAt]
	svc, pub := on.svc, on.pub
	// Reports on the table as it was prefilled (and rolled up).
	res.ReportsMs = timeReports(ctx, pub.nc)
	// Latency at an offered rate is a steady-state figure: measured on the
	// settled service, before the throughput rounds' floods leave it
	// catching up (autovacuum, roll-ups of the flooded hours), which would
	// measure the recovery from overload instead. The other service gets
	// the same load, not measured, in its position, so that both enter the
	// rounds with the same rows, stream history and caches.
	var plain *plainPipeline
	if !o.SkipPlain {
		if plain, err = newPlainPipeline(ctx, dbURL, filepath.Join(dataDir, "plain")); err != nil {
			return res, err
		}
		defer func() {
			if plain != nil {
				plain.close()
			}
		}()
	}
	rate := o.LatencyRate
	if rate <= 0 {
		// Half of what the service can take, measured now by a flood of
		// singles (each service gets one, in its position, for equal load).
		for i, t := range targets {
			if err := checkpoint(ctx, t.dbURL); err != nil {
				return res, err
			}
			say(out, "capacity probe on %s: %d singles...\n", t.name, o.Events)
			v, err := t.pub.throughput(ctx, "audit.log", o.Events, 1, fmt.Sprintf("probe-%d", i))
			if err != nil {
				return res, err
			}
			say(out, "  %.0f events/s\n", v)
			if i == onAt {
				res.LatencyProbe = v
			}
		}
		rate = max(int(res.LatencyProbe/2), 100)
	}
	res.LatencyOffered = rate
	var (
		lat     latencyRun
		commits commitHistogram // committed since the end of the warm-up
		cerr    error
	)
	for i, t := range targets {
		if err := checkpoint(ctx, t.dbURL); err != nil {
			return res, err
		}
		if i != onAt {
			say(out, "the latency run's load on %s, not measured...\n", t.name)
			if _, err := t.pub.latency(ctx, rate, o.LatencyWarm+o.LatencyFor, 0, nil); err != nil {
				return res, err
			}
			continue
		}
		say(out, "latency at %d/s for %s after %s of warm-up...\n", rate, o.LatencyFor, o.LatencyWarm)
		// The service's own per-event commit times, from its histogram:
		// read as the first event after the warm-up is published and again
		// once every event is acked.
		read := make(chan struct{})
		var before commitHistogram
		lat, err = t.pub.latency(ctx, rate, o.LatencyWarm+o.LatencyFor, warmEvents(rate, o), func() {
			defer close(read)
			before, cerr = readCommits(ctx, t.svc.HTTPAddr())
		})
		if err != nil {
			return res, err
		}
		<-read
		if cerr == nil {
			var after commitHistogram
			if after, cerr = readCommits(ctx, t.svc.HTTPAddr()); cerr == nil {
				commits = after.since(before)
			}
		}
	}
	// The first seconds after a pause run on cold caches and an idle
	// consumer (hundreds of ms on a freshly prefilled table, then tens):
	// events published during the warm-up are not counted.
	warm := warmEvents(rate, o)
	floor, streamAck := lat.floor[warm:], lat.streamAck[warm:]
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = percentile(floor, 0.50), percentile(floor, 0.99), percentile(floor, 1)
	res.StreamAckP50Ms, res.StreamAckP99Ms, res.StreamAckMaxMs = percentile(streamAck, 0.50), percentile(streamAck, 0.99), percentile(streamAck, 1)
	if cerr != nil {
		say(out, "  (no per-event commit times from the service's %s: %v)\n", commitMetric, cerr)
	} else {
		res.CommitEvents = int64(commits.total())
		res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs = commits.quantile(0.50), commits.quantile(0.99), commits.maxBound()
	}
	if plain != nil {
		// The services have taken a probe and the latency run's load by
		// now: the plain pipeline gets a flood too, not measured, so that
		// neither side's first round is its first flood.
		if _, err := plain.catchUp(ctx); err != nil {
			return res, err
		}
		say(out, "the plain pipeline's warm-up: %d events, not measured...\n", o.Events)
		if _, err := plain.throughput(ctx, o.Events, "warm"); err != nil {
			return res, err
		}
	}
	// Rounds alternate which service goes first, so that drift (the table
	// growing, autovacuum, the checkpoint cycle) hits both alike; each
	// measurement starts right after a CHECKPOINT, once the machine is
	// quiet again.
	singles, bulks := make([][]float64, len(targets)), make([][]float64, len(targets))
	singleCPU, bulkCPU := make([]cpuRounds, len(targets)), make([]cpuRounds, len(targets))
	var plainRounds []float64
	var plainCPU cpuRounds
	for r := range o.Rounds {
		order := make([]int, len(targets))
		for i := range order {
			order[i] = i
			if r%2 == 1 {
				order[i] = len(targets) - 1 - i
			}
		}
		for _, job := range []struct {
			subject, prefix string
			per             int
			into            [][]float64
			cpu             []cpuRounds
		}{{"audit.log", "s", 1, singles, singleCPU}, {"audit.bulk", "b", 1000, bulks, bulkCPU}} {
			for _, i := range order {
				// The plain pipeline's singles go right before the
				// evidence-on service's in odd rounds and right after
				// them in even ones, on a table of the same size.
				if plain != nil && job.per == 1 && i == onAt && r%2 == 1 {
					if err := measurePlain(ctx, plain, o, r, dbURL, &plainRounds, &plainCPU, out); err != nil {
						return res, err
					}
				}
				t := targets[i]
				if err := checkpoint(ctx, t.dbURL, "audit_logs"); err != nil {
					return res, err
				}
				say(out, "round %d/%d, %s: %s, %d events...\n", r+1, o.Rounds, t.name, job.subject, o.Events)
				if waited, quiet := settle(o.Settle); !quiet && o.Settle > 0 {
					say(out, "  (the machine stayed busy for %s; measuring anyway)\n", waited.Round(time.Second))
				}
				before := cpuNow(t.svc.Pid())
				v, err := t.pub.throughput(ctx, job.subject, o.Events, job.per, fmt.Sprintf("%s%d-%d", job.prefix, r, i))
				if err != nil {
					return res, err
				}
				cpu := job.cpu[i].add(before, cpuNow(t.svc.Pid()), o.Events)
				say(out, "  %.0f events/s; CPU per event: serve / postgres / publisher %s\n", v, cpu)
				job.into[i] = append(job.into[i], v)
				if plain != nil && job.per == 1 && i == onAt && r%2 == 0 {
					if err := measurePlain(ctx, plain, o, r, dbURL, &plainRounds, &plainCPU, out); err != nil {
						return res, err
					}
				}
			}
		}
	}
	res.Rounds = o.Rounds
	res.SinglePerSec, res.BulkPerSec = median(singles[onAt]), median(bulks[onAt])
	res.SingleCPU, res.BulkCPU = singleCPU[onAt].median(), bulkCPU[onAt].median()
	if plain != nil {
		res.SingleRounds, res.PlainRounds = singles[onAt], plainRounds
		res.PlainPerSec = median(plainRounds)
		res.VsPlain = res.SinglePerSec / res.PlainPerSec
		for r := range plainRounds {
			res.VsPlainRounds = append(res.VsPlainRounds, singles[onAt][r]/plainRounds[r])
		}
		c := plainCPU.median()
		res.PlainCPU = &c
		plain.close()
		plain = nil
	}
	if len(targets) > 1 {
		offAt := 1 - onAt
		res.NoSealSingle, res.NoSealBulk = median(singles[offAt]), median(bulks[offAt])
		s, b := singleCPU[offAt].median(), bulkCPU[offAt].median()
		res.NoSealSingleCPU, res.NoSealBulkCPU = &s, &b
		res.SealSingle, res.SealBulk = res.SinglePerSec/res.NoSealSingle, res.BulkPerSec/res.NoSealBulk
		if res.Streams {
			res.StreamsSingle, res.StreamsBulk = 1/res.SealSingle, 1/res.SealBulk
			// Every event the streamed service committed, the latency
			// run's included, reaches the webhook.
			n, err := rowsOf(ctx, targets[offAt].dbURL)
			if err != nil {
				return res, err
			}
			took, err := waitDelivered(ctx, hook, n, 10*time.Minute)
			if err != nil {
				return res, err
			}
			res.StreamsCatchUp = took.Seconds()
		}
		targets[offAt].close()
	}
	// Again after the ingest runs: their events sit in the newest hours,
	// which the roller leaves alone while they change, so reports
	// reaching up to now read those rows raw.
	res.ReportsLoaded = timeReports(ctx, pub.nc)
	res.PeakRSSMB = peakRSSMB(svc)
	if res.BytesPerEvent, err = bytesPerEvent(ctx, dbURL); err != nil {
		return res, err
	}
	// A prefill spans the last year: keeping 335 days deletes about a
	// twelfth of it (nothing of a table without prefill).
	res.CleanupDays = 335
	say(out, "cleanup, retentionDays %d...\n", res.CleanupDays)
	var took time.Duration
	if res.CleanupDeleted, took, err = pub.cleanup(ctx, res.CleanupDays); err != nil {
		return res, err
	}
	res.CleanupMs = float64(took) / float64(time.Millisecond)
	on.close()

	if !o.SkipBaseline {
		say(out, "seed-design baseline (concurrency 2, one transaction per event): %d events...\n", o.BaseEvents)
		// On the evidence-on service's database, so with its signing key:
		// a new key beside that trail would be refused.
		seed := map[string]string{"AUDITQ_CONCURRENCY": "2", "AUDITQ_BATCH_MAX_EVENTS": "1",
			"AUDITQ_SIGNING_KEY_FILE": filepath.Join(dataDir, "on", "signing-key.pem")}
		base, err := startService(ctx, o.Binary, dbURL, filepath.Join(dataDir, "seed"), seed)
		if err != nil {
			return res, err
		}
		bp, err := newPublisher(base.NATSURL())
		if err != nil {
			_ = base.Stop(stopTimeout)
			return res, err
		}
		res.BaselinePerSec, err = bp.throughput(ctx, "audit.log", o.BaseEvents, 1, "base")
		bp.close()
		_ = base.Stop(stopTimeout)
		if err != nil {
			return res, err
		}
		res.VsBaseline = res.SinglePerSec / res.BaselinePerSec
	}
	return res, nil
}

// measurePlain measures one round (r) of the plain pipeline on the
// evidence-on service's database dbURL, after catching its table up with
// audit_logs, the same VACUUM and CHECKPOINT (checkpoint) and the same
// settling as the service's rounds.
func measurePlain(ctx context.Context, p *plainPipeline, o Options, r int, dbURL string, rounds *[]float64, cpu *cpuRounds, out io.Writer) error {
	if _, err := p.catchUp(ctx); err != nil {
		return err
	}
	if err := checkpoint(ctx, dbURL, "plain_logs"); err != nil {
		return err
	}
	say(out, "round %d/%d, plain no-framework pipeline: %d singles...\n", r+1, o.Rounds, o.Events)
	if waited, quiet := settle(o.Settle); !quiet && o.Settle > 0 {
		say(out, "  (the machine stayed busy for %s; measuring anyway)\n", waited.Round(time.Second))
	}
	self := os.Getpid()
	before := cpuNow(self)
	v, err := p.throughput(ctx, o.Events, fmt.Sprintf("r%d", r))
	if err != nil {
		return err
	}
	c := cpu.add(before, cpuNow(self), o.Events)
	say(out, "  %.0f events/s; CPU per event: postgres %.1f us, the benchmark process %.1f us\n", v, c.Postgres, c.Serve)
	*rounds = append(*rounds, v)
	return nil
}

// ratios formats per-round ratios as "1.05x / 0.98x / ...".
func ratios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2fx", x)
	}
	return strings.Join(s, " / ")
}

// target is a running service under measurement, on its own database.
type target struct {
	name  string
	dbURL string
	svc   *harness.Child
	pub   *publisher
}

func (t *target) close() {
	t.pub.close()
	_ = t.svc.Stop(stopTimeout)
}

// setUp starts a service (called name in the output) configured by env on
// dbURL, prefills its table (then waits for the service to roll up the
// imported hours) and connects a publisher.
func setUp(ctx context.Context, o Options, name, dbURL, dataDir string, env map[string]string, out io.Writer) (*target, error) {
	svc, err := startService(ctx, o.Binary, dbURL, dataDir, env)
	if err != nil {
		return nil, err
	}
	if o.Pprof {
		say(out, "  profiles: http://%s/debug/pprof/\n", svc.HTTPAddr())
	}
	if o.Prefill > 0 {
		say(out, "prefilling %d rows...\n", o.Prefill)
		if err := prefill(ctx, dbURL, o.Prefill); err != nil {
			_ = svc.Stop(stopTimeout)
			return nil, err
		}
		say(out, "waiting for the service to roll up the prefilled hours for reports...\n")
		if err := waitRolledUp(ctx, dbURL); err != nil {
			_ = svc.Stop(stopTimeout)
			return nil, err
		}
	}
	pub, err := newPublisher(svc.NATSURL())
	if err != nil {
		_ = svc.Stop(stopTimeout)
		return nil, err
	}
	return &target{name: name, dbURL: dbURL, svc: svc, pub: pub}, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// waitRolledSQL counts the hours, older than the roller's lag, not rolled
// up, their change rows not folded yet, and the days, older than two days, whose day rollup is missing or
// stale. (The roller leaves the newest hours alone: they still change.)
const waitRolledSQL = `SELECT (SELECT count(*) FROM audit_hours WHERE version <> rolled_version AND hour < now() - interval '3 hours') +
	(SELECT count(*) FROM audit_hour_changes WHERE hour < now() - interval '3 hours') + (
	SELECT count(*) FROM (SELECT date_trunc('day', hour, 'UTC') AS d, sum(version) AS sig FROM audit_hours GROUP BY 1) b
	LEFT JOIN audit_spans s ON s.starts_at = b.d AND s.ends_at - s.starts_at = interval '1 day' AND s.hours_version = b.sig
	WHERE s.id IS NULL AND b.d < now() - interval '2 days')`

// waitRolledUp waits until the service's roller has rolled up every hour
// and every older day (see waitRolledSQL), so that a prefilled table is
// measured as a running service would hold it, not while a year of hours
// imported behind its back is being rolled up.
func waitRolledUp(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	deadline := time.Now().Add(30 * time.Minute)
	for {
		var stale int64
		if err := conn.QueryRow(ctx, waitRolledSQL).Scan(&stale); err != nil {
			return err
		}
		if stale == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d hours still not rolled up after 30 minutes", stale)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// checkpoint runs a PostgreSQL CHECKPOINT, so that runs compared with each
// other start at the same point of the checkpoint cycle (the first change
// of a page after a checkpoint writes the whole page to the WAL), after a
// VACUUM (ANALYZE) of each of vacuum: a round then writes into a table
// whose earlier rows are vacuumed, rather than paying for autovacuum's
// pass over what an earlier round or the plain pipeline's catch-up wrote.
// It needs a superuser or the pg_checkpoint role, as the default admin
// URL has.
func checkpoint(ctx context.Context, dbURL string, vacuum ...string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, table := range vacuum {
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{table}.Sanitize()); err != nil {
			return fmt.Errorf("VACUUM %s before measuring: %w", table, err)
		}
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("CHECKPOINT before measuring (needs a superuser or pg_checkpoint): %w", err)
	}
	return nil
}

// warmEvents is how many events of a latency run at rate are its
// warm-up, not counted.
func warmEvents(rate int, o Options) int {
	return min(int(float64(rate)*o.LatencyWarm.Seconds()), int(float64(rate)*(o.LatencyWarm+o.LatencyFor).Seconds())-1)
}

// scratchPrefix begins the names of the benchmark's scratch databases.
const scratchPrefix = "auditq_bench_"

// stopTimeout bounds how long a service may take to stop after SIGTERM
// before it is killed.
const stopTimeout = 60 * time.Second

// startService starts "auditq serve" on dbURL with its data in dataDir
// and the variables of extra, and waits for /readyz. Its output goes to
// dataDir.log and to stderr.
func startService(ctx context.Context, binary, dbURL, dataDir string, extra map[string]string) (*harness.Child, error) {
	env, err := harness.BaseEnv(dbURL, dataDir)
	if err != nil {
		return nil, err
	}
	env["AUDITQ_LOG_FORMAT"] = "text"
	maps.Copy(env, extra)
	return harness.Start(ctx, harness.Config{
		Binary: binary, Env: env, LogPath: dataDir + ".log", Echo: os.Stderr, ReadyTimeout: 60 * time.Second,
	})
}

// peakRSSMB returns the service's high-water resident set size in MiB, 0
// when it cannot be read.
func peakRSSMB(c *harness.Child) float64 {
	b, err := c.VmHWM()
	if err != nil {
		return 0
	}
	return float64(b) / (1 << 20)
}

func bytesPerEvent(ctx context.Context, dbURL string) (float64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(ctx) }()
	var size, rows int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database()), (SELECT count(*) FROM audit_logs)").Scan(&size, &rows); err != nil {
		return 0, err
	}
	if rows == 0 {
		return 0, nil
	}
	return float64(size) / float64(rows), nil
}

func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(p*float64(len(d))) - 1
	i = min(max(i, 0), len(d)-1)
	return float64(d[i]) / float64(time.Millisecond)
}

// timeReports times the report endpoints if the service offers them: p99
// of 20 runs each, in milliseconds.
func timeReports(ctx context.Context, nc *nats.Conn) map[string]float64 {
	now := time.Now().UTC()
	reqs := map[string]string{
		"daily":         `{"reportType":"daily"}`,
		"weekly":        `{"reportType":"weekly"}`,
		"monthly":       `{"reportType":"monthly"}`,
		"custom-90-day": fmt.Sprintf(`{"reportType":"custom","startDate":%q,"endDate":%q}`, now.AddDate(0, 0, -90).Format(time.RFC3339), now.Format(time.RFC3339)),
	}
	out := map[string]float64{}
	for name, body := range reqs {
		var ds []time.Duration
		for range 20 {
			start := time.Now()
			msg, err := nc.RequestWithContext(ctx, "audit.report", []byte(body))
			if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "" {
				break
			}
			ds = append(ds, time.Since(start))
		}
		if len(ds) == 20 {
			out[name] = percentile(ds, 0.99)
		}
	}
	return out
}
