package e2e

// The test side of the harness of the damage tests (chaos_test.go,
// badinput_test.go, security_test.go, bench_test.go): helpers over package
// harness (child processes, free ports, the in-test nats-server) that fail
// the test instead of returning errors, and what only tests need: the
// auditq binary built once per run, a publisher that behaves like a careful
// client, TCP proxies that cut or slow a connection or drop JetStream acks,
// and the exactly-once assertion.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/e2e/harness"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TestMain removes the auditq binary the damage tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// auditqBinary builds ./auditq once per test run and returns its path.
func auditqBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "auditq-test-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "auditq")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/auditq/auditq").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. Tests
// fix ports this way so a restarted child listens where the old one did.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// childEnv is the environment of an "auditq serve" child on dbURL with an
// embedded NATS on a fixed free port, its store in a temporary directory,
// high concurrency and a short ack wait (so redeliveries after a crash come
// quickly), and no schedules (they would add rows of their own).
func childEnv(t *testing.T, dbURL string) map[string]string {
	t.Helper()
	env, err := harness.BaseEnv(dbURL, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(env, map[string]string{
		"AUDITQ_LOG_FORMAT":      "json",
		"AUDITQ_CONCURRENCY":     "256",
		"AUDITQ_MAX_ACK_PENDING": "2048",
		"AUDITQ_ACK_WAIT":        "5s",
		"AUDITQ_CLEANUP_CRON":    "off",
		"AUDITQ_REPORT_CRON":     "off",
	})
	return env
}

// child is one "auditq serve" process (a harness.Child) whose helpers fail
// the test instead of returning errors.
type child struct {
	t    *testing.T
	name string
	h    *harness.Child
	done <-chan struct{} // closed once the process has exited
}

var childSeq atomic.Int64

// startChild starts "auditq serve" with env (and no other AUDITQ_*
// variable) and waits until /readyz answers 200. The process is killed
// when the test ends if it still runs; its output goes to a file whose tail
// is logged when the test fails.
func startChild(t *testing.T, name string, env map[string]string) *child {
	t.Helper()
	c := launchChild(t, name, env)
	c.waitReady(120 * time.Second)
	return c
}

// launchChild starts the process without waiting for readiness.
func launchChild(t *testing.T, name string, env map[string]string) *child {
	t.Helper()
	h, err := harness.Launch(harness.Config{
		Binary:  auditqBinary(t),
		Name:    name,
		Env:     env,
		LogPath: filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d.log", name, childSeq.Add(1))),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, name: name, h: h, done: h.Done()}
	t.Cleanup(func() {
		if err := h.Kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("%s (pid %d) output, last 6 KB:\n%s", c.name, h.Pid(), h.Tail(6<<10))
		}
	})
	return c
}

func tail(s string, n int) string { return harness.Tail(s, n) }

// output returns everything the process wrote so far.
func (c *child) output() string {
	c.t.Helper()
	out, err := c.h.Output()
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *child) running() bool { return c.h.Running() }

// exitCode is the exit code once the process has exited (-1 before, or
// when a signal ended it).
func (c *child) exitCode() int { return c.h.ExitCode() }

// natsURL is where clients reach the broker this child uses.
func (c *child) natsURL() string { return c.h.NATSURL() }

func (c *child) waitReady(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.h.WaitReady(ctx); err != nil {
		c.t.Fatal(err)
	}
}

// readyz returns the status of GET /readyz (0 when it does not answer).
func (c *child) readyz() (int, string) { return c.h.Readyz() }

// kill9 kills the process with SIGKILL and waits for it.
func (c *child) kill9() {
	c.t.Helper()
	if err := c.h.Kill(); err != nil {
		c.t.Fatal(err)
	}
}

// terminate sends SIGTERM and returns the exit code and how long the
// process took to exit; it fails the test after timeout.
func (c *child) terminate(timeout time.Duration) (int, time.Duration) {
	c.t.Helper()
	code, took, err := c.h.Terminate(timeout)
	if err != nil {
		c.t.Fatal(err)
	}
	return code, took
}

// metric returns one sample of the child's /metrics, e.g.
// `auditq_events_ingested_total{handler="audit.log"}` (0 when absent).
func (c *child) metric(sample string) float64 {
	c.t.Helper()
	v, err := c.h.Metric(sample)
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// vmHWM returns the process's peak resident set size in bytes.
func (c *child) vmHWM() int64 { return c.mem(c.h.VmHWM) }

// vmRSS returns the process's current resident set size in bytes.
func (c *child) vmRSS() int64 { return c.mem(c.h.VmRSS) }

func (c *child) mem(read func() (int64, error)) int64 {
	c.t.Helper()
	n, err := read()
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// chaosEvent is a realistic event of about 300 bytes whose id is id.
func chaosEvent(id string, i int) []byte {
	return fmt.Appendf(nil, `{"id":%q,"userId":"user-%d","action":"doc.update","resourceType":"doc","resourceId":"doc-%d",`+
		`"details":{"field":"title","seq":%d},"ipAddress":"198.51.100.%d","userAgent":"chaos-test/1.0",`+
		`"sessionId":"s-%d","success":true,"timestamp":"2026-11-24T10:00:00Z"}`, id, i%1000, i%5000, i, i%250, i%777)
}

// carefulPublisher publishes like a careful client: a JetStream publish
// carrying Nats-Msg-Id = event id, retried until the stream acks it (the
// broker may be down or restarting meanwhile). The guarantee under test
// is about acked publishes, so it keeps the ids it got an ack for.
type carefulPublisher struct {
	t       *testing.T
	nc      *nats.Conn
	js      jetstream.JetStream
	retries atomic.Int64 // publish attempts that failed and were retried

	mu    sync.Mutex
	acked []string
}

func newCarefulPublisher(t *testing.T, natsURL string, opts ...nats.Option) *carefulPublisher {
	t.Helper()
	base := []nats.Option{
		nats.Name("careful-publisher"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// No buffering while disconnected: a publish then fails at once
		// and is retried, instead of waiting in a buffer.
		nats.ReconnectBufSize(-1),
	}
	nc, err := nats.Connect(natsURL, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &carefulPublisher{t: t, nc: nc, js: js}
}

// publish sends one message and retries until JetStream acks it or ctx
// ends.
func (p *carefulPublisher) publish(ctx context.Context, subject, id string, body []byte) error {
	for {
		m := nats.NewMsg(subject)
		m.Data = body
		m.Header.Set(nats.MsgIdHdr, id)
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := p.js.PublishMsg(actx, m)
		cancel()
		if err == nil && ack.Stream == "AUDIT" {
			p.mu.Lock()
			p.acked = append(p.acked, id)
			p.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish %s: never acked: %v", id, err)
		}
		p.retries.Add(1)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// run publishes events prefix-0000000, prefix-0000001, ... on audit.log
// with workers goroutines, at most rate per second (0: as fast as they
// go): limit events, or (limit 0) until the returned stop is called. stop
// waits until every started event (with a limit: every event) is acked and
// returns the acked ids; it fails the test if one is not acked within 5
// minutes.
func (p *carefulPublisher) run(prefix string, rate, workers, limit int) (stop func() []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	quit := make(chan struct{})
	work := make(chan int)
	go func() {
		defer close(work)
		var tick <-chan time.Time
		perTick := 0
		if rate > 0 {
			tk := time.NewTicker(10 * time.Millisecond)
			defer tk.Stop()
			tick = tk.C
			perTick = max(rate/100, 1)
		}
		for i := 0; limit == 0 || i < limit; {
			if tick != nil {
				select {
				case <-tick:
				case <-quit:
					return
				}
			}
			for n := 0; (perTick == 0 || n < perTick) && (limit == 0 || i < limit); n++ {
				select {
				case work <- i:
					i++
				case <-quit:
					return
				}
				if perTick == 0 {
					break
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := fmt.Sprintf("%s-%07d", prefix, i)
				if err := p.publish(ctx, "audit.log", id, chaosEvent(id, i)); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	var once sync.Once
	return func() []string {
		p.t.Helper()
		if limit == 0 {
			once.Do(func() { close(quit) })
		}
		wg.Wait()
		cancel()
		if err, _ := failed.Load().(error); err != nil {
			p.t.Fatal(err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Clone(p.acked)
	}
}

// ackedCount returns how many publishes were acked so far.
func (p *carefulPublisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// rowCount returns count(*) of audit_logs, or -1 while the database does
// not answer.
func rowCount(db *bun.DB) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_logs").Scan(&n); err != nil {
		return -1
	}
	return n
}

// waitRows polls (every interval) until audit_logs holds want rows.
func waitRows(t *testing.T, db *bun.DB, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := rowCount(db)
		if n == want {
			return
		}
		if n > want {
			t.Fatalf("audit_logs holds %d rows, more than the %d events published", n, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit_logs holds %d rows after %s, want %d", n, timeout, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// assertExactlyOnce checks the guarantee: audit_logs holds every id of ids
// exactly once and nothing else.
func assertExactlyOnce(t *testing.T, db *bun.DB, ids []string) {
	t.Helper()
	ctx := context.Background()
	var total, distinct int
	if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT id) FROM audit_logs").Scan(&total, &distinct); err != nil {
		t.Fatal(err)
	}
	var stored []string
	if err := db.NewSelect().Table("audit_logs").Column("id").Scan(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool, len(stored))
	for _, id := range stored {
		have[id] = true
	}
	want := make(map[string]bool, len(ids))
	var missing, extra []string
	for _, id := range ids {
		want[id] = true
		if !have[id] {
			missing = append(missing, id)
		}
	}
	for _, id := range stored {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	if total != len(want) || distinct != len(want) || len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("audit_logs: count(*) = %d, count(DISTINCT id) = %d, want %d each; %d acked events missing (e.g. %v), %d rows not published (e.g. %v)",
			total, distinct, len(want), len(missing), first(missing, 5), len(extra), first(extra, 5))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// startNATS starts an in-test nats-server with JetStream on 127.0.0.1:port
// (a fixed port, so a restart keeps it) with its store in storeDir. It is
// shut down when the test ends, if still running.
func startNATS(t *testing.T, port int, storeDir string, configure ...func(*server.Options)) *server.Server {
	t.Helper()
	srv, err := harness.StartNATS(harness.NATSConfig{Port: port, StoreDir: storeDir, ServerName: "in-test", Configure: configure})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// withHost returns u (a database URL) pointing at hostport instead.
func withHost(t *testing.T, u, hostport string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = hostport
	return pu.String()
}

// tcpProxy forwards connections to a target. Cut closes every connection
// and refuses new ones (the target looks down) until Restore; SetLatency
// delays every chunk sent to the target (a slow target).
type tcpProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	cut     bool
	latency time.Duration
	conns   map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		go p.serve(c)
	}
}

func (p *tcpProxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	closeBoth := func() {
		_ = client.Close()
		_ = server.Close()
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}
	go func() { defer closeBoth(); p.pipe(server, client, true) }()
	go func() { defer closeBoth(); p.pipe(client, server, false) }()
}

func (p *tcpProxy) pipe(dst, src net.Conn, slow bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if slow {
				p.mu.Lock()
				d := p.latency
				p.mu.Unlock()
				if d > 0 {
					time.Sleep(d)
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut closes every connection and refuses new ones until Restore.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore accepts connections again.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// SetLatency delays each chunk sent to the target by d.
func (p *tcpProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// ackDropProxy is a NATS-protocol-aware proxy between a client and a
// nats-server that drops the client's JetStream acks (+ACK, and +WPI
// progress) of every delivery numbered below passFrom. JetStream then
// redelivers after the ack wait although the client committed the
// message: a real redelivery storm without changing the service.
type ackDropProxy struct {
	ln       net.Listener
	target   string
	passFrom uint64

	mu      sync.Mutex
	dropped map[uint64]int    // stream sequence -> acks dropped
	passed  map[uint64]uint64 // stream sequence -> delivery count of the ack let through
}

func startAckDropProxy(t *testing.T, target string, passFrom uint64) *ackDropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackDropProxy{ln: ln, target: target, passFrom: passFrom, dropped: map[uint64]int{}, passed: map[uint64]uint64{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return p
}

func (p *ackDropProxy) Addr() string { return p.ln.Addr().String() }

func (p *ackDropProxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	defer func() { _ = client.Close() }()
	defer func() { _ = server.Close() }()
	go func() { _, _ = io.Copy(client, server); _ = client.Close() }()
	r := bufio.NewReaderSize(client, 64<<10)
	w := bufio.NewWriterSize(server, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(string(line))
		var payload []byte
		if len(fields) >= 3 && (strings.EqualFold(fields[0], "PUB") || strings.EqualFold(fields[0], "HPUB")) {
			line = bytes.Clone(line)
			size, err := strconv.Atoi(fields[len(fields)-1])
			if err != nil {
				return
			}
			payload = make([]byte, size+2)
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			if p.drop(fields[1], payload[:size]) {
				line, payload = nil, nil
			}
		}
		if _, err := w.Write(line); err != nil {
			return
		}
		if _, err := w.Write(payload); err != nil {
			return
		}
		// Flush whenever the client has nothing more buffered, also after a
		// dropped frame: a pull request must never wait behind it.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// drop decides about one published message: an ack or progress report of
// an early delivery is dropped.
func (p *ackDropProxy) drop(subject string, payload []byte) bool {
	if !strings.HasPrefix(subject, "$JS.ACK.") {
		return false
	}
	tok := strings.Split(subject, ".")
	var dc, sseq string
	switch {
	case len(tok) == 9: // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
		dc, sseq = tok[4], tok[5]
	case len(tok) >= 11: // $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>...
		dc, sseq = tok[6], tok[7]
	default:
		return false
	}
	delivered, err1 := strconv.ParseUint(dc, 10, 64)
	seq, err2 := strconv.ParseUint(sseq, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	ack := len(payload) == 0 || bytes.HasPrefix(payload, []byte("+ACK"))
	progress := bytes.HasPrefix(payload, []byte("+WPI"))
	if !ack && !progress {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if delivered < p.passFrom {
		if ack {
			p.dropped[seq]++
		}
		return true
	}
	if ack {
		p.passed[seq] = delivered
	}
	return false
}

// stats returns, per stream sequence, the acks dropped and the delivery
// count of the ack let through.
func (p *ackDropProxy) stats() (dropped map[uint64]int, passed map[uint64]uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dropped, passed = make(map[uint64]int, len(p.dropped)), make(map[uint64]uint64, len(p.passed))
	for k, v := range p.dropped {
		dropped[k] = v
	}
	for k, v := range p.passed {
		passed[k] = v
	}
	return dropped, passed
}
