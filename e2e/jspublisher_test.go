package e2e

// The example publisher in docs/examples/js (nats.js v3 and ajv) against
// the running service: it validates with the schema the service serves,
// refuses an invalid event naming the field without publishing it, and
// publishes the valid ones with JetStream, Nats-Msg-Id = event id.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/service/servicetest"
)

// npmInstall copies the example into a temporary directory and runs npm
// ci there, with its cache in AUDITQ_NPM_CACHE or a temporary directory.
func npmInstall(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the JavaScript example publisher cannot run", tool)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "publish.mjs"} {
		b, err := os.ReadFile(filepath.Join("..", "docs", "examples", "js", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := os.Getenv("AUDITQ_NPM_CACHE")
	if cache == "" {
		cache = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--cache", cache)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return dir
}

// runNode runs the publisher and returns its exit code, stdout and stderr.
func runNode(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"publish.mjs"}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("node: %v", err)
	}
	return code, stdout.String(), stderr.String()
}

func TestJavaScriptExamplePublisher(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm ci and node")
	}
	dir := npmInstall(t)
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	_, js := natstest.Connect(t, svc.NATSURL())

	// The five example events plus two the schema refuses.
	examples, err := os.ReadFile(filepath.Join("..", "docs", "examples", "events.json"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "events.json")
	withBad := strings.TrimSuffix(strings.TrimSpace(string(examples)), "]") +
		`,{"id":"js-bad-1","action":"user.login","resourceType":"user"}` +
		`,{"id":"js-bad-2","action":"user.login","resourceType":"user","resourceId":"u1","ipAddress":"fe80::1%eth0"}]`
	if err := os.WriteFile(file, []byte(withBad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runNode(t, dir, svc.NATSURL(), file)
	if code != 1 || !strings.Contains(stderr, "event 5 (js-bad-1): refused, not published: resourceId:") ||
		!strings.Contains(stderr, "event 6 (js-bad-2): refused, not published: ipAddress:") {
		t.Fatalf("exit %d, want 1 naming both refused fields\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, "stored in AUDIT at sequence"); n != 5 {
		t.Fatalf("%d acknowledged publishes, want 5:\n%s", n, stdout)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'example-%'")
		return n == 5, fmt.Sprintf("%d example rows, want 5", n)
	})
	if n := servicetest.CountRows(t, db, "id LIKE 'js-bad-%'"); n != 0 {
		t.Fatalf("%d refused events stored", n)
	}

	// The bulk example holds an event without action: refused whole by
	// the schema; with --schema-dir the shipped files are used instead.
	code, _, stderr = runNode(t, dir, svc.NATSURL(), mustAbs(t, filepath.Join("..", "docs", "examples", "bulk.json")),
		"--schema-dir", mustAbs(t, filepath.Join("..", "ports", "contract", "schema")))
	if code != 1 || !strings.Contains(stderr, "refused, not published: events.2.action:") {
		t.Fatalf("bulk: exit %d, want 1 naming events.2.action; stderr:\n%s", code, stderr)
	}

	// Publishing the same file again: every event a stream duplicate.
	code, stdout, _ = runNode(t, dir, svc.NATSURL(), file)
	if code != 1 || strings.Count(stdout, "(a duplicate: already published)") != 5 {
		t.Fatalf("re-publish: exit %d\n%s", code, stdout)
	}

	// Nothing the example refused reached the service: the poison stream
	// is empty.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	poison, err := js.Stream(ctx, "AUDIT_POISON")
	if err != nil {
		t.Fatal(err)
	}
	info, err := poison.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("AUDIT_POISON holds %d messages: something invalid was published", info.State.Msgs)
	}
	if n := servicetest.CountRows(t, db, ""); n != 5 {
		t.Fatalf("%d rows, want the 5 examples", n)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
