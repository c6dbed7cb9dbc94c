package natsjs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
)

func TestCheckScheduleSupport(t *testing.T) {
	for _, v := range []string{"2.14.0", "2.14.0-RC.1", "v2.14.1", "2.15.2", "2.20.0", "3.0.0"} {
		if err := natsjs.CheckScheduleSupport(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"2.13.9", "2.12.3", "2.9.25", "1.99.0", "", "dev", "2"} {
		err := natsjs.CheckScheduleSupport(v)
		if err == nil {
			t.Errorf("%q accepted", v)
			continue
		}
		if !strings.Contains(err.Error(), "2.14 or newer") {
			t.Errorf("%q: error %q does not name the version needed", v, err)
		}
	}
}

func TestNextFiring(t *testing.T) {
	after := time.Date(2026, 11, 25, 10, 20, 30, 500e6, time.UTC) // a Wednesday
	installed := time.Date(2026, 11, 25, 10, 0, 0, 200e6, time.UTC)
	ok := []struct {
		pattern, tz string
		want        time.Time
	}{
		{"0 0 3 * * *", "", time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)},
		{"0 0 3 * * *", "UTC", time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)},
		{"0 0 3 * * *", "Europe/Berlin", time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)}, // CET = UTC+1
		{"0 15 0 * * *", "", time.Date(2026, 11, 26, 0, 15, 0, 0, time.UTC)},
		{"* * * * * *", "", time.Date(2026, 11, 25, 10, 20, 31, 0, time.UTC)},
		{"*/15 * * * * *", "", time.Date(2026, 11, 25, 10, 20, 45, 0, time.UTC)},
		{"0 0 0 * * sat", "", time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		{"@daily", "", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
		{"@hourly", "", time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)},
		{"@every 1s", "", time.Date(2026, 11, 25, 10, 20, 31, 0, time.UTC)},
		{"@every 7m", "", time.Date(2026, 11, 25, 10, 21, 0, 0, time.UTC)}, // 10:00 + 3*7m
	}
	for _, c := range ok {
		got, err := natsjs.NextFiring(c.pattern, c.tz, installed, after)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("NextFiring(%q, %q) = %v, %v; want %v", c.pattern, c.tz, got, err, c.want)
		}
	}
	bad := []struct{ pattern, tz, want string }{
		{"0 3 * * *", "", "lacks the leading seconds"},
		{"0 0 25 * * *", "", "pattern"},
		{"@every 500ms", "", "at least 1s"},
		{"@every 1m", "Europe/Berlin", "cron patterns only"},
		{"0 0 3 * * *", "Mars/Olympus", "time zone"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "", "time zone"},
	}
	for _, c := range bad {
		if _, err := natsjs.NextFiring(c.pattern, c.tz, installed, after); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NextFiring(%q, %q) error = %v, want one containing %q", c.pattern, c.tz, err, c.want)
		}
	}
}

// jobStream creates the auditq topology (schedules allowed) on a fresh
// in-process server.
func jobStream(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.ClientURL())
	err := natsjs.Ensure(context.Background(), js, natsjs.Topology{
		JobSubjects:    []string{"audit.log", "audit.cleanup", "audit.schedule.>"},
		PoisonSubjects: "audit.poison.>", ResultSubjects: "audit.results.>",
		PoisonMaxMsgs: 1000, PoisonMaxBytes: 1 << 20, ResultsMaxMsgs: 10,
		DuplicateWindow: time.Minute, AckWait: 5 * time.Second, MaxAckPending: 100,
		AllowMsgSchedules: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestSchedulerInstallReplaceRemoveList(t *testing.T) {
	ctx := context.Background()
	_, js := jobStream(t)
	sc := natsjs.NewScheduler(js, natsjs.StreamAudit, "audit.schedule.")
	s := natsjs.Schedule{Name: "cleanup", Pattern: "0 0 3 * * *", TimeZone: "Europe/Berlin",
		Target: "audit.cleanup", Payload: []byte(`{"retentionDays":365}`)}

	if changed, err := sc.Install(ctx, s); err != nil || !changed {
		t.Fatalf("first install: changed=%v err=%v", changed, err)
	}
	if changed, err := sc.Install(ctx, s); err != nil || changed {
		t.Fatalf("identical install: changed=%v err=%v, want no change", changed, err)
	}
	s.Payload = []byte(`{"retentionDays":400}`)
	if changed, err := sc.Install(ctx, s); err != nil || !changed {
		t.Fatalf("changed install: changed=%v err=%v", changed, err)
	}
	report := natsjs.Schedule{Name: "report-daily", Pattern: "0 15 0 * * *", Target: "audit.log", Payload: []byte(`{}`)}
	if _, err := sc.Install(ctx, report); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	list, err := sc.List(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "cleanup" || list[1].Name != "report-daily" {
		t.Fatalf("list = %+v", list)
	}
	got := list[0]
	if got.Subject != "audit.schedule.cleanup" || got.Pattern != s.Pattern || got.TimeZone != "Europe/Berlin" ||
		got.Target != "audit.cleanup" || string(got.Payload) != `{"retentionDays":400}` {
		t.Fatalf("installed cleanup = %+v", got)
	}
	if want, _ := natsjs.NextFiring(s.Pattern, s.TimeZone, now, now); !got.Next.Equal(want) || !got.Next.After(now) {
		t.Fatalf("next = %v, want %v", got.Next, want)
	}
	// The replaced schedule message is gone: one message per schedule.
	str, _ := js.Stream(ctx, natsjs.StreamAudit)
	info, err := str.Info(ctx, jetstream.WithSubjectFilter("audit.schedule.>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Subjects["audit.schedule.cleanup"] != 1 || info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages: %v", info.State.Msgs, info.State.Subjects)
	}

	if removed, err := sc.Remove(ctx, "cleanup"); err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if removed, err := sc.Remove(ctx, "cleanup"); err != nil || removed {
		t.Fatalf("second remove: %v %v", removed, err)
	}
	if list, err := sc.List(ctx, now); err != nil || len(list) != 1 || list[0].Name != "report-daily" {
		t.Fatalf("after remove: %+v, %v", list, err)
	}

	// The server rejects what the local check would not catch: a target
	// outside the stream.
	if _, err := sc.Install(ctx, natsjs.Schedule{Name: "x", Pattern: "@every 1m", Target: "elsewhere", Payload: []byte("{}")}); err == nil {
		t.Fatal("target outside the stream accepted")
	}
	if _, err := sc.Install(ctx, natsjs.Schedule{Name: "a.b", Pattern: "@every 1m", Target: "audit.log"}); err == nil {
		t.Fatal("name with a dot accepted")
	}
}

// TestScheduleFiresIntoTheWorkQueueAndOutlivesOtherMessages: the schedule
// message sits in the work-queue stream next to jobs that are consumed and
// removed, and keeps firing; fired messages carry Nats-Scheduler and a
// Nats-Schedule-Next that matches NextFiring.
func TestScheduleFiresIntoTheWorkQueueAndOutlivesOtherMessages(t *testing.T) {
	ctx := context.Background()
	_, js := jobStream(t)
	sc := natsjs.NewScheduler(js, natsjs.StreamAudit, "audit.schedule.")
	if _, err := sc.Install(ctx, natsjs.Schedule{Name: "cleanup", Pattern: "* * * * * *", Target: "audit.cleanup",
		Payload: []byte(`{"retentionDays":365}`)}); err != nil {
		t.Fatal(err)
	}
	logs, err := js.Consumer(ctx, natsjs.StreamAudit, natsjs.ConsumerName("audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := js.Consumer(ctx, natsjs.StreamAudit, natsjs.ConsumerName("audit.cleanup"))
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for round := range 3 {
		// Other jobs come and go (work-queue retention removes them on ack).
		for range 5 {
			if _, err := js.Publish(ctx, "audit.log", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		batch, err := logs.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		m, err := jobs.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("round %d: no firing: %v", round, err)
		}
		md, _ := m.Metadata()
		if md.Sequence.Stream <= last {
			t.Fatalf("round %d: sequence %d not after %d", round, md.Sequence.Stream, last)
		}
		last = md.Sequence.Stream
		if m.Headers().Get(natsjs.HeaderScheduler) != "audit.schedule.cleanup" || m.Headers().Get(nats.MsgIdHdr) != "" ||
			string(m.Data()) != `{"retentionDays":365}` {
			t.Fatalf("fired message: %v %s", m.Headers(), m.Data())
		}
		next, err := time.Parse(time.RFC3339Nano, m.Headers().Get(natsjs.HeaderScheduleNext))
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := natsjs.NextFiring("* * * * * *", "", time.Time{}, md.Timestamp.Truncate(time.Second)); !next.Equal(want) {
			t.Fatalf("Nats-Schedule-Next %v, NextFiring says %v", next, want)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	list, err := sc.List(ctx, time.Now())
	if err != nil || len(list) != 1 {
		t.Fatalf("schedule gone after consuming other messages: %+v %v", list, err)
	}
}

// TestRepublishingAFiredMessageSucceeds: a fired message's metadata holds
// Nats-Scheduler, which JetStream refuses from clients; the publisher must
// still be able to put it on the poison stream.
func TestRepublishingAFiredMessageSucceeds(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"audit.poison.>"}}); err != nil {
		t.Fatal(err)
	}
	pubConn, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := natsjs.NewPublisher(pubConn, watermill.NopLogger{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	msg := message.NewMessage("AUDIT:7", []byte(`{"retentionDays":1}`))
	msg.Metadata.Set(natsjs.HeaderScheduler, "audit.schedule.cleanup")
	msg.Metadata.Set(natsjs.HeaderScheduleNext, "2026-11-26T03:00:00Z")
	if err := pub.Publish("audit.poison.cleanup", msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
	str, _ := js.Stream(ctx, "P")
	got, err := str.GetLastMsgForSubject(ctx, "audit.poison.cleanup")
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("nats_scheduler") != "audit.schedule.cleanup" || got.Header.Get(natsjs.HeaderScheduler) != "" {
		t.Fatalf("headers: %v", got.Header)
	}
}

func TestEnsureKeepsSchedulesOnOnceEnabled(t *testing.T) {
	ctx := context.Background()
	_, js := jobStream(t)
	err := natsjs.Ensure(ctx, js, natsjs.Topology{
		JobSubjects:    []string{"audit.log", "audit.cleanup", "audit.schedule.>"},
		PoisonSubjects: "audit.poison.>", ResultSubjects: "audit.results.>",
		PoisonMaxMsgs: 1000, PoisonMaxBytes: 1 << 20, ResultsMaxMsgs: 10,
		DuplicateWindow: time.Minute, AckWait: 5 * time.Second, MaxAckPending: 100,
		AllowMsgSchedules: false, // e.g. every schedule set to "off"
	})
	if err != nil {
		t.Fatalf("Ensure with schedules off on a stream that had them: %v", err)
	}
	str, _ := js.Stream(ctx, natsjs.StreamAudit)
	if cfg := str.CachedInfo().Config; !cfg.AllowMsgSchedules || !cfg.AllowDirect || cfg.MaxAge != 0 {
		t.Fatalf("AUDIT config: schedules=%v direct=%v maxAge=%v", cfg.AllowMsgSchedules, cfg.AllowDirect, cfg.MaxAge)
	}
}
