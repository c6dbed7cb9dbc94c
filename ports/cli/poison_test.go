package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// fakePoison is a PoisonStore in memory, recording replays.
type fakePoison struct {
	msgs     []PoisonMessage // oldest first
	replayed map[uint64][]byte
	closed   bool
}

func (f *fakePoison) Stream() string { return "AUDIT_POISON" }
func (f *fakePoison) Close()         { f.closed = true }

func (f *fakePoison) List(_ context.Context, flt PoisonFilter) ([]PoisonMessage, error) {
	var out []PoisonMessage
	for i := len(f.msgs) - 1; i >= 0 && (flt.Limit == 0 || len(out) < flt.Limit); i-- {
		out = append(out, f.msgs[i])
	}
	return out, nil
}

func (f *fakePoison) Get(_ context.Context, seq uint64) (PoisonMessage, error) {
	for _, m := range f.msgs {
		if m.Seq == seq {
			return m, nil
		}
	}
	return PoisonMessage{}, errors.New("no such message in the poison stream")
}

func (f *fakePoison) Replay(ctx context.Context, seq uint64, payload []byte) (PoisonReplay, error) {
	m, err := f.Get(ctx, seq)
	if err != nil {
		return PoisonReplay{}, err
	}
	if payload == nil {
		payload = m.Payload
	}
	f.replayed[seq] = payload
	return PoisonReplay{Subject: m.Target, Seq: 100 + seq, ID: m.ID}, nil
}

func (f *fakePoison) Discard(ctx context.Context, seq uint64) (PoisonMessage, error) {
	return f.Get(ctx, seq)
}

func newFakePoison() *fakePoison {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	return &fakePoison{replayed: map[uint64][]byte{}, msgs: []PoisonMessage{
		{Seq: 1, Time: at, Subject: "audit.poison.log", Job: "log", ID: "m-1", EventID: "e-1", Target: "audit.log",
			Reason: "bad\tline\nbreak", Headers: nats.Header{"b": {"2"}, "a": {"1"}}, Payload: []byte(`{"id":"e-1"}`)},
		{Seq: 2, Time: at.Add(time.Second), Subject: "audit.poison.cleanup", Job: "cleanup", ID: "c-1", Target: "audit.cleanup",
			Reason: "retentionDays: bad", Payload: []byte{0xff, 0xfe}},
	}}
}

func runPoisonCmd(t *testing.T, f *fakePoison, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), "poison", args, Deps{Poison: func(context.Context) (PoisonStore, error) { return f, nil }}, &out)
	return out.String(), err
}

func TestPoisonCommandsFormatsAndArguments(t *testing.T) {
	f := newFakePoison()
	out, err := runPoisonCmd(t, f, "list")
	if err != nil {
		t.Fatal(err)
	}
	want := "SEQ  STORED (UTC)          JOB      ID   EVENT ID  REASON\n" +
		"2    2026-11-24T10:00:01Z  cleanup  c-1  -         retentionDays: bad\n" +
		"1    2026-11-24T10:00:00Z  log      m-1  e-1       bad line break\n"
	if out != want || !f.closed {
		t.Fatalf("list:\n%s\nwant:\n%s", out, want)
	}

	out, err = runPoisonCmd(t, f, "show", "--json", "2")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["payloadBase64"] != "//4=" || v["payload"] != nil {
		t.Fatalf("show --json of a non-UTF-8 payload: %s (%v)", out, err)
	}
	out, _ = runPoisonCmd(t, f, "show", "1")
	if !strings.Contains(out, "a: 1\nb: 2\n\n{\"id\":\"e-1\"}\n") {
		t.Fatalf("show 1, headers sorted, then the payload:\n%s", out)
	}

	// Flags before or after the sequences.
	file := filepath.Join(t.TempDir(), "fixed.json")
	if err := os.WriteFile(file, []byte(`{"id":"e-1","fixed":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err = runPoisonCmd(t, f, "replay", "1", "--file", file); err != nil || string(f.replayed[1]) != `{"id":"e-1","fixed":true}` ||
		out != "replayed 1 to audit.log as seq 101, id m-1; removed from AUDIT_POISON\n" {
		t.Fatalf("replay --file: %q %v %q", out, err, f.replayed[1])
	}

	// One failing sequence fails the command; the others are replayed.
	out, err = runPoisonCmd(t, f, "replay", "7", "2")
	if err == nil || !strings.Contains(out, "replayed 2 to audit.cleanup") {
		t.Fatalf("replay 7 2: %q %v", out, err)
	}
	if ExitCode(err) != ExitFailed {
		t.Errorf("replay of a missing message: exit code %d, want %d", ExitCode(err), ExitFailed)
	}
	for _, args := range [][]string{
		{"replay"}, {"replay", "x"}, {"replay", "0"}, {"replay", "--file", file, "1", "2"},
		{"replay", "--file", os.DevNull, "1"}, {"show", "--json", "--payload", "1"}, {"list", "extra"},
		{"list", "--limit", "-1"}, {"list", "--job", "nope"}, {"list", "--bogus"}, {"nope"}, {},
	} {
		if _, err := runPoisonCmd(t, f, args...); !errors.Is(err, ErrUsage) {
			t.Errorf("poison %v: %v, want a usage error", args, err)
		}
	}
}
