package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
)

// TestMain doubles as a fake "auditq serve" when HARNESS_FAKE_SERVE is set
// (the test binary starts itself as the child): it prints its AUDITQ_*
// variables, serves /readyz (503 until HARNESS_FAKE_READY_AFTER has
// passed) and /metrics on AUDITQ_HTTP_ADDR, and on SIGTERM prints "bye"
// and exits 0, unless told to fail at once or to ignore SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("HARNESS_FAKE_SERVE") == "1" {
		fakeServe()
		return
	}
	os.Exit(m.Run())
}

func fakeServe() {
	for _, kv := range slices.Sorted(slices.Values(os.Environ())) {
		if strings.HasPrefix(kv, "AUDITQ_") {
			fmt.Println(kv)
		}
	}
	if msg := os.Getenv("HARNESS_FAKE_FAIL"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	readyAt := time.Now()
	if d, err := time.ParseDuration(os.Getenv("HARNESS_FAKE_READY_AFTER")); err == nil {
		readyAt = readyAt.Add(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Now().Before(readyAt) {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "# HELP fake_total A counter.\nfake_total{a=\"b\"} 42\nfake_total{a=\"c\"} 7\n")
	})
	ln, err := net.Listen("tcp", os.Getenv("AUDITQ_HTTP_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	go func() { _ = http.Serve(ln, mux) }()
	for range term {
		if os.Getenv("HARNESS_FAKE_IGNORE_TERM") == "" {
			fmt.Println("bye")
			os.Exit(0)
		}
		fmt.Println("ignoring SIGTERM")
	}
}

// syncBuffer is a bytes.Buffer safe for the writes of the child's output
// and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeConfig is the Config of a fake child with the variables in extra.
func fakeConfig(t *testing.T, extra map[string]string) Config {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env, err := BaseEnv("postgres://unused", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env["HARNESS_FAKE_SERVE"] = "1"
	for k, v := range extra {
		env[k] = v
	}
	return Config{Binary: bin, Name: "fake", Env: env, LogPath: filepath.Join(t.TempDir(), "fake.log")}
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("an empty Config is valid")
	}
	for _, want := range []string{"Binary", "LogPath", "AUDITQ_HTTP_ADDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, does not name %s", err, want)
		}
	}
	cfg := fakeConfig(t, nil)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v for a complete Config", err)
	}
	cfg.Env = map[string]string{"AUDITQ_HTTP_ADDR": "off", "A=B": "c"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "AUDITQ_HTTP_ADDR") || !strings.Contains(err.Error(), `"A=B"`) {
		t.Errorf("Validate() = %v, want AUDITQ_HTTP_ADDR off and the variable A=B refused", err)
	}
	if c, err := Launch(cfg); err == nil || c != nil {
		t.Errorf("Launch of an invalid Config = %v, %v; want nil and an error", c, err)
	}
	if err := (NATSConfig{Port: 4222}).Validate(); err == nil || !strings.Contains(err.Error(), "StoreDir") || !strings.Contains(err.Error(), "4222") {
		t.Errorf("NATSConfig.Validate() = %v, want StoreDir missing and port 4222 refused", err)
	}
}

// A child gets its own environment only, becomes ready, answers metrics
// and memory questions, and exits 0 on SIGTERM, its output in the log file
// and echoed.
func TestChildLifecycle(t *testing.T) {
	t.Setenv("AUDITQ_LEAKED", "from-the-parent")
	cfg := fakeConfig(t, map[string]string{"AUDITQ_MINE": "1", "HARNESS_FAKE_READY_AFTER": "300ms"})
	var echo syncBuffer
	cfg.Echo = &echo
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Kill() })
	if code, body := c.Readyz(); code != http.StatusOK {
		t.Fatalf("Readyz() = %d %q after Start", code, body)
	}
	if !c.Running() || c.ExitCode() != -1 || c.Pid() <= 0 {
		t.Fatalf("Running() %v, ExitCode() %d, Pid() %d for a running child", c.Running(), c.ExitCode(), c.Pid())
	}
	if c.HTTPAddr() != cfg.Env["AUDITQ_HTTP_ADDR"] || c.NATSURL() != "nats://"+cfg.Env["AUDITQ_NATS_LISTEN"] {
		t.Errorf("HTTPAddr() %s, NATSURL() %s for %v", c.HTTPAddr(), c.NATSURL(), cfg.Env)
	}
	for sample, want := range map[string]float64{`fake_total{a="b"}`: 42, `fake_total{a="c"}`: 7, `absent_total`: 0} {
		if v, err := c.Metric(sample); err != nil || v != want {
			t.Errorf("Metric(%s) = %v, %v; want %v", sample, v, err, want)
		}
	}
	hwm, err1 := c.VmHWM()
	rss, err2 := c.VmRSS()
	if err1 != nil || err2 != nil || rss <= 0 || hwm < rss {
		t.Errorf("VmHWM() = %d, %v; VmRSS() = %d, %v", hwm, err1, rss, err2)
	}
	code, took, err := c.Terminate(30 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("Terminate() = %d, %s, %v; want exit code 0", code, took, err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done() not closed after Terminate")
	}
	if c.Running() || c.ExitCode() != 0 {
		t.Errorf("Running() %v, ExitCode() %d after the exit", c.Running(), c.ExitCode())
	}
	if _, err := c.VmHWM(); err == nil {
		t.Error("VmHWM() of an exited child did not fail")
	}
	out, err := c.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "AUDITQ_MINE=1\n") || strings.Contains(out, "AUDITQ_LEAKED") || !strings.HasSuffix(out, "bye\n") {
		t.Errorf("output %q: want AUDITQ_MINE, no AUDITQ_LEAKED, and bye at the end", out)
	}
	if echo.String() != out {
		t.Errorf("echoed %q, the log file holds %q", echo.String(), out)
	}
	if got := c.Tail(4); got != "...bye\n" {
		t.Errorf("Tail(4) = %q", got)
	}
	if err := c.Kill(); err != nil {
		t.Errorf("Kill() of an exited child = %v", err)
	}
	if err := c.Stop(time.Second); err != nil {
		t.Errorf("Stop() of an exited child = %v", err)
	}
}

// Start reports a child that exits during start-up with its output.
func TestStartReportsAnEarlyExit(t *testing.T) {
	c, err := Start(context.Background(), fakeConfig(t, map[string]string{"HARNESS_FAKE_FAIL": "fake start-up failure"}))
	if err == nil || c != nil {
		t.Fatalf("Start() = %v, %v; want an error", c, err)
	}
	for _, want := range []string{"exited during start-up", "exit status 3", "fake start-up failure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start() error %q does not say %q", err, want)
		}
	}
}

// Start gives up after ReadyTimeout, and WaitReady when its context ends.
func TestStartTimesOut(t *testing.T) {
	cfg := fakeConfig(t, map[string]string{"HARNESS_FAKE_READY_AFTER": "1h"})
	cfg.ReadyTimeout = 300 * time.Millisecond
	if c, err := Start(context.Background(), cfg); err == nil || c != nil || !strings.Contains(err.Error(), "not ready within") {
		t.Fatalf("Start() = %v, %v; want not ready", c, err)
	}
	c, err := Launch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Kill() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitReady(ctx); err == nil {
		t.Fatal("WaitReady() with an ended context did not fail")
	}
}

// Stop kills a child that ignores SIGTERM; Terminate leaves it running.
func TestStopKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	c, err := Start(context.Background(), fakeConfig(t, map[string]string{"HARNESS_FAKE_IGNORE_TERM": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Kill() })
	if code, _, err := c.Terminate(300 * time.Millisecond); err == nil || code != -1 || !c.Running() {
		t.Fatalf("Terminate() = %d, %v; running %v; want a timeout and the child still running", code, err, c.Running())
	}
	if err := c.Stop(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not exit") {
		t.Fatalf("Stop() = %v, want the SIGTERM timeout", err)
	}
	if c.Running() || c.ExitCode() != -1 {
		t.Errorf("after Stop: running %v, exit code %d; want killed", c.Running(), c.ExitCode())
	}
}

func TestFreePortAndBaseEnv(t *testing.T) {
	port, err := FreePort()
	if err != nil || port == 0 || port == natsDefaultPort {
		t.Fatalf("FreePort() = %d, %v", port, err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d: %v", port, err)
	}
	_ = ln.Close()
	env, err := BaseEnv("postgres://db", "/data")
	if err != nil {
		t.Fatal(err)
	}
	if env["AUDITQ_DATABASE_URL"] != "postgres://db" || env["AUDITQ_DATA_DIR"] != "/data" || env["AUDITQ_LOG_LEVEL"] != "warn" ||
		env["AUDITQ_NATS_LISTEN"] == env["AUDITQ_HTTP_ADDR"] || !strings.HasPrefix(env["AUDITQ_HTTP_ADDR"], "127.0.0.1:") {
		t.Errorf("BaseEnv() = %v", env)
	}
	if _, err := BaseEnv("", ""); err == nil {
		t.Error("BaseEnv without a database URL and data directory did not fail")
	}
	if got := Tail("abcdef", 3); got != "...def" {
		t.Errorf("Tail = %q", got)
	}
}

func TestStartNATS(t *testing.T) {
	srv, err := StartNATS(NATSConfig{StoreDir: t.TempDir(), ServerName: "harness-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.JetStreamEnabled() || srv.Name() != "harness-test" {
		t.Errorf("JetStream %v, name %q", srv.JetStreamEnabled(), srv.Name())
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func TestScratchDatabase(t *testing.T) {
	admin := os.Getenv("AUDITQ_TEST_DATABASE_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	if _, _, err := ScratchDatabase(ctx, admin, "Bad-Name;"); err == nil {
		t.Error("a prefix that is not an identifier was accepted")
	}
	dbURL, drop, err := ScratchDatabase(ctx, admin, "auditq_harness_")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		_ = drop()
		t.Fatal(err)
	}
	var name string
	err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&name)
	if err != nil || !strings.HasPrefix(name, "auditq_harness_") || len(name) != len("auditq_harness_")+12 {
		t.Errorf("current_database() = %q, %v", name, err)
	}
	// drop ends this connection too (WITH (FORCE)).
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	if c, err := pgx.Connect(ctx, dbURL); err == nil {
		_ = c.Close(ctx)
		t.Fatalf("%s still there after drop", name)
	}
}
