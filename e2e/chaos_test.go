package e2e

// Damage tests: each does the damage for real (kill -9, a database that
// goes away, a broker restart, dropped acks, a slow database, SIGTERM, a
// second instance) to a real "auditq serve" child process on real
// PostgreSQL and JetStream, then checks the guarantee: every event whose
// publish JetStream acked is in audit_logs exactly once.
// docs/guarantees.md lists them.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/service/servicetest"
)

// skipIfShort skips a long damage test under "go test -short", for a quick
// local run; "go tool task test" and CI run them all.
func skipIfShort(t *testing.T) {
	if testing.Short() {
		t.Skip("long damage test; runs without -short")
	}
}

// Scenario 1: kill -9 the service five times at random moments while
// 200,000 events are ingested, restarting it each time.
func TestCrashKill9DuringIngestLosesNothing(t *testing.T) {
	skipIfShort(t)
	const total = 200_000
	dbURL := pgtest.NewDatabase(t)
	env := childEnv(t, dbURL)
	db := servicetest.OpenDB(t, env)
	svc := startChild(t, "serve", env)

	pub := newCarefulPublisher(t, svc.natsURL())
	began := time.Now()
	stop := pub.run("crash", 0, 64, total)

	// Five kill moments, at random row counts spread over the run, each a
	// random few hundred milliseconds after that count is reached.
	var marks []int
	for range 5 {
		marks = append(marks, 10_000+rand.IntN(total-30_000))
	}
	sort.Ints(marks)
	for i, mark := range marks {
		deadline := time.Now().Add(3 * time.Minute)
		for rowCount(db) < mark {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: audit_logs never reached %d rows (%d)", i+1, mark, rowCount(db))
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		rows, acked := rowCount(db), pub.ackedCount()
		svc.kill9()
		t.Logf("kill -9 #%d at %s: %d rows, %d publishes acked", i+1, time.Since(began).Round(time.Millisecond), rows, acked)
		svc = startChild(t, "serve", env)
	}
	ids := stop()
	if len(ids) != total {
		t.Fatalf("%d publishes acked, want %d", len(ids), total)
	}
	waitRows(t, db, total, 3*time.Minute)
	assertExactlyOnce(t, db, ids)
	t.Logf("%d events, 5 kills: exactly once after %s; %d publish retries; %v duplicates counted since the last restart",
		total, time.Since(began).Round(time.Millisecond), pub.retries.Load(), svc.metric(`auditq_events_duplicate_total{handler="audit.log"}`))
}

// Scenario 2: the database goes away for 60 seconds during ingest at a
// steady rate (a TCP proxy between service and PostgreSQL closes every
// connection and refuses new ones). Nothing is poisoned, lost or doubled;
// /readyz says 503 meanwhile; the lag shows in
// auditq_consumer_pending_messages; the backlog drains after.
func TestDatabaseOutageSixtySeconds(t *testing.T) {
	skipIfShort(t)
	// Long and mostly waiting: runs alongside the other long scenario.
	t.Parallel()
	const outage = 60 * time.Second
	dbURL := pgtest.NewDatabase(t)
	proxy := startTCPProxy(t, "127.0.0.1:5432")
	env := childEnv(t, withHost(t, dbURL, proxy.Addr()))
	env["AUDITQ_ACK_WAIT"] = "30s" // the default: retries and nak back-off as in production
	db := servicetest.OpenDB(t, map[string]string{"AUDITQ_DATABASE_URL": dbURL})
	svc := startChild(t, "serve", env)
	pub := newCarefulPublisher(t, svc.natsURL())
	stop := pub.run("outage", 200, 16, 0)
	lag := func() float64 { return svc.metric(`auditq_consumer_pending_messages{subject="audit.log"}`) }

	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := rowCount(db)
		return n >= 500, fmt.Sprintf("%d rows before the outage", n)
	})
	proxy.Cut()
	cutAt := time.Now()
	t.Logf("database cut at %d rows", rowCount(db))

	// /readyz turns 503 (the database check) and stays so; the lag grows.
	var notReadyAt time.Time
	var samples, ready503, maxLag int
	for time.Since(cutAt) < outage {
		code, body := svc.readyz()
		if code == http.StatusServiceUnavailable && notReadyAt.IsZero() {
			notReadyAt = time.Now()
			t.Logf("/readyz 503 after %s: %s", notReadyAt.Sub(cutAt).Round(time.Millisecond), body)
		}
		if !notReadyAt.IsZero() {
			samples++
			if code == http.StatusServiceUnavailable {
				ready503++
			} else {
				t.Errorf("/readyz = %d during the outage: %s", code, body)
			}
		}
		maxLag = max(maxLag, int(lag()))
		time.Sleep(time.Second)
	}
	if notReadyAt.IsZero() || notReadyAt.Sub(cutAt) > 15*time.Second {
		t.Fatalf("/readyz did not report 503 within 15s of the cut")
	}
	if maxLag < 5000 {
		t.Errorf("auditq_consumer_pending_messages peaked at %d during a %s outage at 200 events/s, want >= 5000", maxLag, outage)
	}
	proxy.Restore()
	restoredAt := time.Now()
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		code, body := svc.readyz()
		return code == http.StatusOK, fmt.Sprintf("/readyz %d after the database came back: %s", code, body)
	})
	time.Sleep(3 * time.Second) // steady ingest goes on a little after recovery
	ids := stop()
	waitRows(t, db, len(ids), 4*time.Minute)
	drained := time.Since(restoredAt)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := lag()
		return n == 0, fmt.Sprintf("auditq_consumer_pending_messages = %v after the drain", n)
	})
	assertExactlyOnce(t, db, ids)
	if p := svc.metric(`auditq_messages_poisoned_total{handler="audit.log"}`); p != 0 {
		t.Errorf("%v messages poisoned by a database outage", p)
	}
	assertPoisonEmpty(t, svc.natsURL())
	t.Logf("%d events; /readyz 503 in %d of %d samples; lag peaked at %d; backlog drained %s after recovery",
		len(ids), ready503, samples, maxLag, drained.Round(time.Millisecond))
}

// assertPoisonEmpty checks that stream AUDIT_POISON holds nothing.
func assertPoisonEmpty(t *testing.T, natsURL string) {
	t.Helper()
	_, js := natstest.Connect(t, natsURL)
	s, err := js.Stream(context.Background(), "AUDIT_POISON")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("AUDIT_POISON holds %d messages, want none", info.State.Msgs)
	}
}

// Scenario 3a: the embedded broker restarts (it lives in the service
// process, so the service restarts) twice while publishers keep
// publishing. Publishers see errors and retry; every acked event is stored
// once.
func TestEmbeddedBrokerRestartDuringPublishing(t *testing.T) {
	skipIfShort(t)
	dbURL := pgtest.NewDatabase(t)
	env := childEnv(t, dbURL)
	db := servicetest.OpenDB(t, env)
	svc := startChild(t, "serve", env)
	pub := newCarefulPublisher(t, svc.natsURL())
	stop := pub.run("embedded", 2000, 16, 0)
	for i := range 2 {
		acked := pub.ackedCount()
		servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
			return pub.ackedCount() >= acked+3000, fmt.Sprintf("%d publishes acked", pub.ackedCount())
		})
		if code, took := svc.terminate(60 * time.Second); code != 0 {
			t.Fatalf("restart %d: exit code %d after %s", i+1, code, took)
		}
		retries := pub.retries.Load()
		time.Sleep(time.Second) // the broker stays down a moment
		svc = startChild(t, "serve", env)
		servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
			return pub.retries.Load() > retries, "publishers saw no error while the broker was down"
		})
	}
	acked := pub.ackedCount()
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		return pub.ackedCount() >= acked+2000, fmt.Sprintf("%d publishes acked after the last restart", pub.ackedCount())
	})
	ids := stop()
	waitRows(t, db, len(ids), 2*time.Minute)
	assertExactlyOnce(t, db, ids)
	t.Logf("%d events across 2 broker restarts, %d publish attempts retried", len(ids), pub.retries.Load())
}

// Scenario 3b: an external nats-server the service connects to
// (AUDITQ_NATS_URL) is shut down and started again on the same port and
// store during ingest. The service reconnects and goes on; publishers
// retry; every acked event is stored once.
func TestExternalBrokerRestartDuringIngest(t *testing.T) {
	skipIfShort(t)
	dbURL := pgtest.NewDatabase(t)
	port, store := freePort(t), t.TempDir()
	srv := startNATS(t, port, store)
	env := childEnv(t, dbURL)
	env["AUDITQ_NATS_URL"] = fmt.Sprintf("nats://127.0.0.1:%d", port)
	db := servicetest.OpenDB(t, env)
	svc := startChild(t, "serve", env)
	pub := newCarefulPublisher(t, svc.natsURL())
	stop := pub.run("external", 2000, 16, 0)
	for i := range 2 {
		rows := rowCount(db)
		servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
			n := rowCount(db)
			return n >= rows+3000, fmt.Sprintf("%d rows stored", n)
		})
		retries := pub.retries.Load()
		srv.Shutdown()
		srv.WaitForShutdown()
		time.Sleep(2 * time.Second)
		srv = startNATS(t, port, store)
		servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
			return pub.retries.Load() > retries, "publishers saw no error while the broker was down"
		})
		servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
			code, body := svc.readyz()
			return code == http.StatusOK, fmt.Sprintf("restart %d: /readyz %d: %s", i+1, code, body)
		})
	}
	// The service still ingests after the restarts.
	rows := rowCount(db)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := rowCount(db)
		return n >= rows+2000, fmt.Sprintf("%d rows stored after the last restart (%d before)", n, rows)
	})
	ids := stop()
	waitRows(t, db, len(ids), 2*time.Minute)
	assertExactlyOnce(t, db, ids)
	if !svc.running() {
		t.Fatal("the service exited")
	}
	t.Logf("%d events across 2 external broker restarts, %d publish attempts retried", len(ids), pub.retries.Load())
}

// Scenario 4: every message is delivered three times. A NATS-aware proxy
// between the service and nats-server drops the service's acks (and
// progress reports) of the first two deliveries, so JetStream redelivers
// each message after the 2 s ack wait although its row is committed. The
// rows do not change (not even rewritten: same xmin) and the repeats are
// counted in auditq_events_duplicate_total.
func TestRedeliveryStormEveryMessageThreeTimes(t *testing.T) {
	skipIfShort(t)
	const total = 3000
	dbURL := pgtest.NewDatabase(t)
	port := freePort(t)
	startNATS(t, port, t.TempDir())
	proxy := startAckDropProxy(t, fmt.Sprintf("127.0.0.1:%d", port), 3)
	env := childEnv(t, dbURL)
	env["AUDITQ_NATS_URL"] = "nats://" + proxy.Addr()
	env["AUDITQ_ACK_WAIT"] = "2s"
	db := servicetest.OpenDB(t, env)
	svc := startChild(t, "serve", env)

	pub := newCarefulPublisher(t, fmt.Sprintf("nats://127.0.0.1:%d", port))
	ids := pub.run("storm", 0, 32, total)()
	waitRows(t, db, total, 2*time.Minute)
	rowsHash := func() string {
		var h string
		if err := db.QueryRowContext(context.Background(),
			`SELECT md5(string_agg(t::text || xmin::text, ',' ORDER BY id)) FROM audit_logs t`).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := rowsHash()
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		_, passed := proxy.stats()
		return len(passed) == total, fmt.Sprintf("%d of %d messages acked on their third delivery", len(passed), total)
	})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		d := svc.metric(`auditq_events_duplicate_total{handler="audit.log"}`)
		return d >= 2*total, fmt.Sprintf("auditq_events_duplicate_total = %v, want >= %d", d, 2*total)
	})
	dropped, passed := proxy.stats()
	for seq, dc := range passed {
		if dc < 3 || dropped[seq] < 2 {
			t.Fatalf("stream sequence %d: ack let through on delivery %d after %d dropped, want delivery >= 3 after 2", seq, dc, dropped[seq])
		}
	}
	if after := rowsHash(); after != before {
		t.Fatal("rows changed while their messages were redelivered")
	}
	assertExactlyOnce(t, db, ids)
	dup := svc.metric(`auditq_events_duplicate_total{handler="audit.log"}`)
	ing := svc.metric(`auditq_events_ingested_total{handler="audit.log"}`)
	if ing != total {
		t.Fatalf("auditq_events_ingested_total = %v, want %d", ing, total)
	}
	t.Logf("%d events, each delivered 3 times: %v ingested, %v duplicates counted, rows unchanged", total, ing, dup)
}

// backpressureRSSBound is the stated memory bound of scenario 5: the peak
// resident set of "auditq serve" (its embedded nats-server included) while
// a backlog of tens of thousands of messages builds up. What the service
// holds is bounded by AUDITQ_CONCURRENCY, not by the backlog: the pull
// consumer fetches at most that many messages, and the backlog waits in
// the stream's files.
const backpressureRSSBound = 256 << 20

// Scenario 5: for two minutes events are published faster than the
// service can write them (PostgreSQL is slowed by a proxy adding 40 ms to
// every chunk sent to it, and one flusher writes at most 64 events per
// transaction). Memory stays under backpressureRSSBound, the stream
// absorbs the backlog, nothing is dropped; a restart with a fast
// configuration then drains it.
func TestBackpressureSlowDatabaseTwoMinutes(t *testing.T) {
	skipIfShort(t)
	// Long and mostly waiting: runs alongside the other long scenario.
	t.Parallel()
	const (
		rate     = 1000
		duration = 2 * time.Minute
	)
	dbURL := pgtest.NewDatabase(t)
	proxy := startTCPProxy(t, "127.0.0.1:5432")
	proxy.SetLatency(40 * time.Millisecond)
	slow := childEnv(t, withHost(t, dbURL, proxy.Addr()))
	slow["AUDITQ_CONCURRENCY"] = "64"
	slow["AUDITQ_BATCH_FLUSHERS"] = "1"
	slow["AUDITQ_ACK_WAIT"] = "30s"
	db := servicetest.OpenDB(t, map[string]string{"AUDITQ_DATABASE_URL": dbURL})
	svc := startChild(t, "slow", slow)
	pub := newCarefulPublisher(t, svc.natsURL())
	began := time.Now()
	stop := pub.run("backpressure", rate, 16, 0)

	var lagSamples []int
	var rssAt30s int64
	for time.Since(began) < duration {
		time.Sleep(5 * time.Second)
		lagSamples = append(lagSamples, int(svc.metric(`auditq_consumer_pending_messages{subject="audit.log"}`)))
		if rssAt30s == 0 && time.Since(began) >= 30*time.Second {
			rssAt30s = svc.vmRSS()
		}
	}
	ids := stop()
	rows, lag := rowCount(db), svc.metric(`auditq_consumer_pending_messages{subject="audit.log"}`)
	peak, rssEnd := svc.vmHWM(), svc.vmRSS()
	t.Logf("after %s: %d published, %d stored, backlog %v; lag samples %v", time.Since(began).Round(time.Second), len(ids), rows, lag, lagSamples)
	t.Logf("auditq serve memory: peak (VmHWM) %d MiB, RSS at 30 s %d MiB, at the end %d MiB; bound %d MiB",
		peak>>20, rssAt30s>>20, rssEnd>>20, backpressureRSSBound>>20)
	if len(ids) < rate*int(duration/time.Second)/2 {
		t.Fatalf("only %d events published in %s; the publisher was not fast", len(ids), duration)
	}
	if lag < 20_000 || rows >= len(ids)*3/4 || int(lag) < lagSamples[0]+15_000 {
		t.Fatalf("the service kept up (backlog %v, samples %v, %d of %d stored): no backpressure was exercised", lag, lagSamples, rows, len(ids))
	}
	if peak > backpressureRSSBound {
		t.Errorf("peak RSS %d MiB exceeds the bound of %d MiB", peak>>20, backpressureRSSBound>>20)
	}

	// Drain: restart with a fast configuration straight to PostgreSQL.
	if code, took := svc.terminate(60 * time.Second); code != 0 {
		t.Fatalf("slow service: exit code %d after %s", code, took)
	}
	fast := maps.Clone(slow)
	fast["AUDITQ_DATABASE_URL"] = dbURL
	fast["AUDITQ_CONCURRENCY"] = "256"
	delete(fast, "AUDITQ_BATCH_FLUSHERS")
	drainStart := time.Now()
	svc = startChild(t, "fast", fast)
	waitRows(t, db, len(ids), 3*time.Minute)
	t.Logf("backlog of %v drained in %s", lag, time.Since(drainStart).Round(time.Millisecond))
	assertExactlyOnce(t, db, ids)
	if p := svc.metric(`auditq_messages_poisoned_total{handler="audit.log"}`); p != 0 {
		t.Errorf("%v messages poisoned", p)
	}
}

// Scenario 6: SIGTERM during ingest. The service stops pulling, lets the
// messages in flight commit (or leaves them unacked), and exits 0 well
// within AUDITQ_SHUTDOWN_TIMEOUT; after a restart every acked event is
// stored exactly once.
func TestGracefulShutdownSIGTERMDuringIngest(t *testing.T) {
	skipIfShort(t)
	const total = 40_000
	dbURL := pgtest.NewDatabase(t)
	env := childEnv(t, dbURL)
	env["AUDITQ_SHUTDOWN_TIMEOUT"] = "20s"
	db := servicetest.OpenDB(t, env)
	svc := startChild(t, "serve", env)
	pub := newCarefulPublisher(t, svc.natsURL())
	stop := pub.run("sigterm", 0, 32, total)
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		n := rowCount(db)
		return n >= total/4, fmt.Sprintf("%d rows before SIGTERM", n)
	})
	rows := rowCount(db)
	code, took := svc.terminate(60 * time.Second)
	t.Logf("SIGTERM at %d rows: exit code %d after %s", rows, code, took.Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took > 25*time.Second {
		t.Errorf("shutdown took %s, more than AUDITQ_SHUTDOWN_TIMEOUT (20s) allows", took)
	}
	if out := svc.output(); strings.Contains(out, "shutdown incomplete") {
		t.Errorf("in-flight messages did not finish within AUDITQ_SHUTDOWN_TIMEOUT:\n%s", tail(out, 4<<10))
	}
	svc = startChild(t, "serve", env)
	ids := stop()
	if len(ids) != total {
		t.Fatalf("%d publishes acked, want %d", len(ids), total)
	}
	waitRows(t, db, total, 3*time.Minute)
	assertExactlyOnce(t, db, ids)
	t.Logf("after the restart: %v events re-delivered as duplicates", svc.metric(`auditq_events_duplicate_total{handler="audit.log"}`))
}

// twoInstancesOnExternalNATS starts an in-test nats-server and returns its
// URL and the environments of two instances on it and on one scratch
// database (childEnv plus extra), differing only in their HTTP address.
func twoInstancesOnExternalNATS(t *testing.T, extra map[string]string) (natsURL string, envA, envB map[string]string) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	port := freePort(t)
	startNATS(t, port, t.TempDir())
	natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	envA = childEnv(t, dbURL)
	envA["AUDITQ_NATS_URL"] = natsURL
	maps.Copy(envA, extra)
	envB = maps.Clone(envA)
	envB["AUDITQ_HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	return natsURL, envA, envB
}

// Scenario 6b: SIGTERM with messages pulled ahead. With an ack wait of
// 5 minutes, an instance that stops gracefully naks what it had pulled and
// not handed to a handler, so a second instance stores the rest within a
// minute instead of after the ack wait, and every acked event exactly
// once.
func TestSIGTERMGivesPulledMessagesBackAtOnce(t *testing.T) {
	skipIfShort(t)
	const total = 30_000
	natsURL, envA, envB := twoInstancesOnExternalNATS(t, map[string]string{"AUDITQ_ACK_WAIT": "5m"})
	db := servicetest.OpenDB(t, envA)
	a := launchChild(t, "serve-a", envA)
	a.waitReady(2 * time.Minute)

	pub := newCarefulPublisher(t, natsURL)
	stop := pub.run("handback", 0, 32, total)
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		n := rowCount(db)
		return n >= total/10, fmt.Sprintf("%d rows before SIGTERM", n)
	})
	code, took := a.terminate(60 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	_, js := natstest.Connect(t, natsURL)
	cons, err := js.Consumer(context.Background(), "AUDIT", "auditq-log")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rows := rowCount(db)
	// Naked messages count as ack pending until they are delivered again.
	t.Logf("serve-a stopped after %s at %d rows; consumer: %d pending, %d ack pending (naked included)", took.Round(time.Millisecond), rows, info.NumPending, info.NumAckPending)
	if rows >= total {
		t.Fatalf("serve-a stored all %d events before it stopped: nothing left to hand back", total)
	}

	b := launchChild(t, "serve-b", envB)
	b.waitReady(2 * time.Minute)
	started := time.Now()
	ids := stop()
	if len(ids) != total {
		t.Fatalf("%d publishes acked, want %d", len(ids), total)
	}
	waitRows(t, db, total, time.Minute)
	assertExactlyOnce(t, db, ids)
	t.Logf("serve-b stored the other %d events within %s of its start", total-rows, time.Since(started).Round(time.Millisecond))
}

// Scenario 8: two "auditq serve" processes share one external nats-server
// and one database. Both ingest (their metrics say so), no event is
// written twice, and killing one (kill -9) mid-ingest loses nothing: its
// unacked messages go to the other after the ack wait.
func TestScaleOutTwoInstancesOneKilled(t *testing.T) {
	skipIfShort(t)
	const total = 60_000
	natsURL, envA, envB := twoInstancesOnExternalNATS(t, nil)
	db := servicetest.OpenDB(t, envA)
	a := launchChild(t, "serve-a", envA)
	b := launchChild(t, "serve-b", envB)
	a.waitReady(2 * time.Minute)
	b.waitReady(2 * time.Minute)

	pub := newCarefulPublisher(t, natsURL)
	stop := pub.run("scale", 0, 32, total)
	const ingested = `auditq_events_ingested_total{handler="audit.log"}`
	var byA, byB float64
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		byA, byB = a.metric(ingested), b.metric(ingested)
		return byA >= 2000 && byB >= 2000, fmt.Sprintf("ingested: serve-a %v, serve-b %v", byA, byB)
	})
	a.kill9()
	t.Logf("kill -9 serve-a after it ingested %v events (serve-b %v, %d rows)", byA, byB, rowCount(db))
	ids := stop()
	waitRows(t, db, total, 3*time.Minute)
	assertExactlyOnce(t, db, ids)
	t.Logf("serve-b ingested %v in all, %v duplicates (serve-a's committed but unacked messages)",
		b.metric(ingested), b.metric(`auditq_events_duplicate_total{handler="audit.log"}`))
}
