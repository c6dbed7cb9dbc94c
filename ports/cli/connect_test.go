package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// With nothing listening, every command says that auditq is not running
// there and how to start it, and never shows a password of the URL.
func TestCommandsSayWhenAuditqIsNotRunning(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	url := "nats://alice:s3cret@" + addr
	connect := NewConnector(url, func() (*nats.Conn, error) { return nats.Connect(url, nats.Timeout(2*time.Second)) })
	ctx := context.Background()
	verify := func(ctx context.Context, c Connector, args []string, out *bytes.Buffer) error {
		return Verify(ctx, VerifyDeps{Connect: c}, args, out)
	}
	for name, run := range map[string]func() error{
		"publish":    func() error { return Publish(ctx, connect, PublishLimits{}, nil, &bytes.Buffer{}) },
		"cleanup":    func() error { return Cleanup(ctx, connect, []string{"--retention-days", "90"}, &bytes.Buffer{}) },
		"report":     func() error { return Report(ctx, connect, []string{"--type", "daily"}, &bytes.Buffer{}) },
		"query":      func() error { return Query(ctx, connect, nil, &bytes.Buffer{}) },
		"checkpoint": func() error { return Checkpoint(ctx, connect, nil, &bytes.Buffer{}) },
		"verify":     func() error { return verify(ctx, connect, []string{"--event", "e1"}, &bytes.Buffer{}) },
	} {
		err := run()
		var nr *NotRunningError
		if !errors.As(err, &nr) || !errors.Is(err, nats.ErrNoServers) || ExitCode(err) != ExitFailed {
			t.Errorf("%s: %v, want a *NotRunningError", name, err)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"auditq is not running at nats://" + addr + " (no NATS server answered)", `"auditq serve"`, "AUDITQ_NATS_URL"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q does not say %q", name, msg, want)
			}
		}
		if strings.Contains(msg, "s3cret") || strings.Contains(msg, "alice") {
			t.Errorf("%s: the error shows the URL's credentials: %s", name, msg)
		}
	}
	// Other connection errors pass as they are.
	other := errors.New("creds file unreadable")
	if _, err := NewConnector(url, func() (*nats.Conn, error) { return nil, other })(); err != other {
		t.Errorf("got %v, want the dial error", err)
	}
	for in, want := range map[string]string{
		"nats://127.0.0.1:4223":                       "nats://127.0.0.1:4223",
		"nats://tok@h:1, tls://u:p@h2:2":              "nats://h:1,tls://h2:2",
		"nats://u:p%zz@h:1":                           "nats://h:1",
		"nats://127.0.0.1:4223,nats://127.0.0.1:4224": "nats://127.0.0.1:4223,nats://127.0.0.1:4224",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
