package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config configures one "auditq serve" child process.
type Config struct {
	// Binary is the auditq executable. Required.
	Binary string
	// Name labels the process in errors; default "auditq serve".
	Name string
	// Env is the child's configuration, e.g. from BaseEnv. It must set
	// AUDITQ_HTTP_ADDR (where /readyz and /metrics are read). No other
	// AUDITQ_* variable of this process reaches the child; the rest of its
	// environment (PATH, HOME, ...) does.
	Env map[string]string
	// LogPath is the file the child's stdout and stderr are written to
	// (created, or truncated). Required: the caller decides where it lives
	// and when it goes away.
	LogPath string
	// Echo, if set, also receives everything the child writes, as it
	// writes it.
	Echo io.Writer
	// ReadyTimeout bounds Start's wait for /readyz; default 2 minutes.
	ReadyTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "auditq serve"
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 2 * time.Minute
	}
}

// Validate reports every missing or unusable setting at once (nil when
// there is none).
func (c Config) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("harness: Config needs Binary"))
	}
	if c.LogPath == "" {
		errs = append(errs, errors.New("harness: Config needs LogPath"))
	}
	if a := c.Env["AUDITQ_HTTP_ADDR"]; a == "" || a == "off" {
		errs = append(errs, errors.New("harness: Config.Env must set AUDITQ_HTTP_ADDR to an address (readiness and metrics are read there)"))
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("harness: Config.Env: bad variable name %q", k))
		}
	}
	return errors.Join(errs...)
}

// Child is one running (or exited) "auditq serve" process. Its methods
// are safe for concurrent use.
type Child struct {
	cfg   Config
	cmd   *exec.Cmd
	done  chan struct{}
	state *os.ProcessState // set before done is closed
}

// Launch starts the child and returns without waiting for it to be ready
// (see WaitReady). On failure (an invalid cfg, a log file that cannot be
// created, a binary that does not start) it returns nil and the error; no
// process is left behind.
func Launch(cfg Config) (*Child, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Env = maps.Clone(cfg.Env)
	logFile, err := os.Create(cfg.LogPath)
	if err != nil {
		return nil, fmt.Errorf("harness: %s: log file: %w", cfg.Name, err)
	}
	c := &Child{cfg: cfg, done: make(chan struct{})}
	c.cmd = exec.Command(cfg.Binary, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUDITQ_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		c.cmd.Env = append(c.cmd.Env, k+"="+cfg.Env[k])
	}
	var out io.Writer = logFile
	if cfg.Echo != nil {
		out = io.MultiWriter(logFile, cfg.Echo)
	}
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("harness: start %s: %w", cfg.Name, err)
	}
	go func() {
		_ = c.cmd.Wait()
		c.state = c.cmd.ProcessState
		_ = logFile.Close()
		close(c.done)
	}()
	return c, nil
}

// Start launches the child and waits until GET /readyz answers 200, for
// at most cfg.ReadyTimeout or until ctx ends. On failure it kills the
// child (if it was started) and returns nil and the error, which carries
// the tail of the child's output when it exited.
func Start(ctx context.Context, cfg Config) (*Child, error) {
	cfg.setDefaults()
	c, err := Launch(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		_ = c.Kill()
		return nil, err
	}
	return c, nil
}

// WaitReady polls GET /readyz every 100 ms until it answers 200. It
// returns nil then; an error carrying the exit state and the tail of the
// output if the child exits first; or an error when ctx ends first.
func (c *Child) WaitReady(ctx context.Context) error {
	began := time.Now()
	for {
		if code, _ := c.Readyz(); code == http.StatusOK {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("harness: %s exited during start-up (%v):\n%s", c.cfg.Name, c.state, c.Tail(6<<10))
		case <-ctx.Done():
			return fmt.Errorf("harness: %s not ready within %s: %w", c.cfg.Name, time.Since(began).Round(time.Millisecond), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Readyz returns the status and body of GET /readyz, or 0 and the error
// text when it does not answer within 5 seconds.
func (c *Child) Readyz() (int, string) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + c.HTTPAddr() + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Pid returns the process id (it cannot fail; the id stays valid as a
// label after the child exited).
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// HTTPAddr returns AUDITQ_HTTP_ADDR of the child (it cannot fail).
func (c *Child) HTTPAddr() string { return c.cfg.Env["AUDITQ_HTTP_ADDR"] }

// NATSURL returns where clients reach the broker the child uses:
// AUDITQ_NATS_URL if set, else its embedded server on AUDITQ_NATS_LISTEN
// (it cannot fail).
func (c *Child) NATSURL() string {
	if u := c.cfg.Env["AUDITQ_NATS_URL"]; u != "" {
		return u
	}
	return "nats://" + c.cfg.Env["AUDITQ_NATS_LISTEN"]
}

// Done returns a channel closed once the child has exited and been
// reaped (it cannot fail).
func (c *Child) Done() <-chan struct{} { return c.done }

// Running reports whether the child has not exited yet (it cannot fail).
func (c *Child) Running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// ExitCode returns the exit code, or -1 while the child runs or when a
// signal ended it (it cannot fail).
func (c *Child) ExitCode() int {
	select {
	case <-c.done:
		return c.state.ExitCode()
	default:
		return -1
	}
}

// Terminate sends SIGTERM and waits at most timeout for the exit. It
// returns the exit code and how long the exit took; when the child was
// gone already, its exit code at once. When it is still running after
// timeout, it returns -1, the time waited and an error, and leaves it
// running (Kill it).
func (c *Child) Terminate(timeout time.Duration) (code int, took time.Duration, err error) {
	began := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.state.ExitCode(), time.Since(began), nil
	case <-time.After(timeout):
		return -1, time.Since(began), fmt.Errorf("harness: %s did not exit within %s of SIGTERM", c.cfg.Name, timeout)
	}
}

// Kill sends SIGKILL and waits until the child is gone. It returns nil
// then, also when the child had exited already, and an error only when
// the signal cannot be sent.
func (c *Child) Kill() error {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("harness: kill %s: %w", c.cfg.Name, err)
	}
	<-c.done
	return nil
}

// Stop ends the child gracefully if it can: SIGTERM, and SIGKILL after
// timeout. It returns nil once the child exited after SIGTERM (or was gone
// already); the error of Terminate when it had to be killed.
func (c *Child) Stop(timeout time.Duration) error {
	if !c.Running() {
		return nil
	}
	if _, _, err := c.Terminate(timeout); err != nil {
		if kerr := c.Kill(); kerr != nil {
			return errors.Join(err, kerr)
		}
		return err
	}
	return nil
}

// Output returns everything the child wrote so far; on failure what could
// be read and the error of reading the log file.
func (c *Child) Output() (string, error) {
	b, err := os.ReadFile(c.cfg.LogPath)
	return string(b), err
}

// Tail returns the last n bytes of the output (see the function Tail); if
// the log file cannot be read, a line saying why instead.
func (c *Child) Tail(n int) string {
	out, err := c.Output()
	if err != nil {
		return fmt.Sprintf("(output of %s unreadable: %v)", c.cfg.Name, err)
	}
	return Tail(out, n)
}

// Metric returns one sample of the child's /metrics, e.g.
// `auditq_events_ingested_total{handler="audit.log"}`, 0 when the sample
// is absent. On failure (no answer, a value that is not a number) it
// returns 0 and the error.
func (c *Child) Metric(sample string) (float64, error) {
	v, err := scrape(c.HTTPAddr(), sample)
	if err != nil {
		return 0, fmt.Errorf("harness: %s /metrics: %w", c.cfg.Name, err)
	}
	return v, nil
}

// scrape reads one sample from /metrics at addr.
func scrape(addr, sample string) (float64, error) {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, sc.Err()
}

// VmHWM returns the child's peak resident set size in bytes, from
// /proc/<pid>/status. On failure (the child has exited, no such line) it
// returns 0 and the error.
func (c *Child) VmHWM() (int64, error) { return c.procStatus("VmHWM:") }

// VmRSS returns the child's current resident set size in bytes, from
// /proc/<pid>/status. On failure (the child has exited, no such line) it
// returns 0 and the error.
func (c *Child) VmRSS() (int64, error) { return c.procStatus("VmRSS:") }

func (c *Child) procStatus(key string) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", c.Pid())
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("harness: %s: %w", c.cfg.Name, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("harness: %s: %s %w", c.cfg.Name, path, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("harness: %s: no %s in %s", c.cfg.Name, key, path)
}
