package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// cleanupEnv is testEnv with retention settings: 30 days minimum, a held
// user and a held resource (both schedules stay off, as testEnv has them,
// unless a test sets them).
func cleanupEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_RETENTION_MIN_DAYS"] = "30"
	env["AUDITQ_RETENTION_HOLD_USERS"] = "u-held"
	env["AUDITQ_RETENTION_HOLD_RESOURCES"] = "document:42, document:a:b"
	return env
}

// seedRetentionRows stores events 400 and 10 days old, excluded and held
// ones among them, under ids prefixed with prefix; it returns the ids a
// 90-day cleanup excluding security.breach and admin.access must keep.
func seedRetentionRows(t *testing.T, db *bun.DB, prefix string) (keep []string) {
	t.Helper()
	now := time.Now().UTC()
	old, recent := now.AddDate(0, 0, -400), now.AddDate(0, 0, -10)
	ev := func(id, user, action, rtype, rid string, at time.Time) audit.Event {
		at = audit.Normalize(at)
		return audit.Event{ID: prefix + id, UserID: user, Action: action, ResourceType: rtype, ResourceID: rid,
			Success: true, OccurredAt: at, ReceivedAt: at}
	}
	events := []audit.Event{
		ev("old-login", "u1", "user.login", "user", "1", old),
		ev("old-system", "", "system.job", "job", "7", old),
		ev("old-other-type-42", "u1", "user.update", "user", "42", old),
		ev("old-91-days", "u2", "doc.view", "doc", "3", now.AddDate(0, 0, -91)),
		ev("keep-breach", "u1", "security.breach", "user", "1", old),
		ev("keep-admin", "u2", "admin.access", "system", "1", old),
		ev("keep-held-user", "u-held", "user.login", "user", "1", old),
		ev("keep-held-doc", "u1", "document.read", "document", "42", old),
		ev("keep-held-doc-colon", "u1", "document.read", "document", "a:b", old),
		ev("keep-recent", "u1", "user.login", "user", "1", recent),
		ev("keep-89-days", "u2", "doc.view", "doc", "3", now.AddDate(0, 0, -89)),
	}
	if _, err := postgres.NewRepository(db).Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.HasPrefix(e.ID, prefix+"keep-") {
			keep = append(keep, e.ID)
		}
	}
	slices.Sort(keep)
	return keep
}

// eventIDs returns the ids of audit_logs, sorted, leaving out the
// cleanups' own events.
func eventIDs(t *testing.T, db *bun.DB) []string {
	t.Helper()
	var ids []string
	err := db.NewSelect().Table("audit_logs").Column("id").Where("action <> ?", audit.CleanupAction).
		Order("id").Scan(context.Background(), &ids)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

type cleanupEvent struct {
	ID        string
	RequestID string
	Details   struct {
		Cutoff         time.Time `json:"cutoff"`
		ExcludeActions []string  `json:"excludeActions"`
		DeletedCount   int64     `json:"deletedCount"`
		DryRun         bool      `json:"dryRun"`
		DurationMs     *int64    `json:"durationMs"`
		Trigger        string    `json:"trigger"`
	}
}

// cleanupEvents returns the recorded cleanup runs, oldest first.
func cleanupEvents(t *testing.T, db *bun.DB) []cleanupEvent {
	t.Helper()
	var rows []struct {
		ID           string          `bun:"id"`
		RequestID    string          `bun:"request_id"`
		Details      json.RawMessage `bun:"details"`
		ResourceType string          `bun:"resource_type"`
		ResourceID   string          `bun:"resource_id"`
		UserID       *string         `bun:"user_id"`
	}
	err := db.NewSelect().Table("audit_logs").Column("id", "request_id", "details", "resource_type", "resource_id", "user_id").
		Where("action = ?", audit.CleanupAction).Order("occurred_at", "id").Scan(context.Background(), &rows)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]cleanupEvent, len(rows))
	for i, r := range rows {
		if r.ResourceType != "audit_log" || r.ResourceID != "audit_logs" || r.UserID != nil {
			t.Fatalf("cleanup event %s: resource %s/%s user %v", r.ID, r.ResourceType, r.ResourceID, r.UserID)
		}
		out[i].ID, out[i].RequestID = r.ID, r.RequestID
		if err := json.Unmarshal(r.Details, &out[i].Details); err != nil {
			t.Fatal(err)
		}
		if out[i].Details.DurationMs == nil {
			t.Fatalf("cleanup event %s has no durationMs: %s", r.ID, r.Details)
		}
	}
	return out
}

// runCLI runs an auditq client command against svc, as main dispatches
// it, and returns its output.
func runCLI(t *testing.T, env map[string]string, svc *service.Service, args ...string) (string, error) {
	t.Helper()
	e := maps.Clone(env)
	e["AUDITQ_NATS_URL"] = svc.NATSURL()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return servicetest.Client(ctx, t, e, args...)
}

func TestManualCleanupDryRunThenDelete(t *testing.T) {
	env := cleanupEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	keep := seedRetentionRows(t, db, "")
	all := eventIDs(t, db)

	out, err := runCLI(t, env, svc, "cleanup", "--retention-days", "90", "--exclude", "security.breach, admin.access", "--dry-run", "--timeout", "30s")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "dry run: would delete 4 events before") {
		t.Fatalf("dry run output:\n%s", out)
	}
	if got := eventIDs(t, db); !reflect.DeepEqual(got, all) {
		t.Fatalf("dry run deleted rows: %v", got)
	}

	out, err = runCLI(t, env, svc, "cleanup", "--retention-days", "90", "--exclude", "security.breach,admin.access", "--timeout", "30s")
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if !strings.Contains(out, "deleted 4 events before") || !strings.Contains(out, "keeping security.breach, admin.access") {
		t.Fatalf("cleanup output:\n%s", out)
	}
	if got := eventIDs(t, db); !reflect.DeepEqual(got, keep) {
		t.Fatalf("survivors:\n got  %v\n want %v", got, keep)
	}

	// Both runs are recorded as audit events of their own.
	runs := cleanupEvents(t, db)
	if len(runs) != 2 {
		t.Fatalf("%d cleanup events, want 2: %+v", len(runs), runs)
	}
	dry, real := runs[0].Details, runs[1].Details
	if !dry.DryRun || dry.DeletedCount != 4 || real.DryRun || real.DeletedCount != 4 {
		t.Fatalf("recorded runs: %+v / %+v", dry, real)
	}
	wantCutoff := time.Now().UTC().AddDate(0, 0, -90)
	if d := real.Cutoff.Sub(wantCutoff); d > time.Minute || d < -time.Minute || real.Trigger != "manual" ||
		!reflect.DeepEqual(real.ExcludeActions, []string{"security.breach", "admin.access"}) {
		t.Fatalf("recorded run: %+v (cutoff want about %v)", real, wantCutoff)
	}
	if runs[1].ID != "cleanup:"+runs[1].RequestID || !strings.HasPrefix(runs[1].RequestID, "cleanup-") {
		t.Fatalf("event id %q, request id %q", runs[1].ID, runs[1].RequestID)
	}

	// By date, without exclusions: only the held rows and recent ones stay.
	out, err = runCLI(t, env, svc, "cleanup", "--before", time.Now().AddDate(0, 0, -95).Format(time.DateOnly), "--timeout", "30s")
	if err != nil || !strings.Contains(out, "deleted 2 events") {
		t.Fatalf("cleanup --before: %v\n%s", err, out)
	}
	want := []string{"keep-89-days", "keep-held-doc", "keep-held-doc-colon", "keep-held-user", "keep-recent"}
	if got := eventIDs(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("survivors:\n got  %v\n want %v", got, want)
	}
}

// poisoned returns the reason_poisoned header of each message on
// audit.poison.cleanup, by Nats-Msg-Id.
func poisoned(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, natsjs.StreamPoison, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"audit.poison.cleanup"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out[m.Headers().Get(nats.MsgIdHdr)] = m.Headers().Get("reason_poisoned")
		}
		if n == 0 {
			return out
		}
	}
}

func TestCleanupGuardRailsArePoisonedAndDeleteNothing(t *testing.T) {
	env := cleanupEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seedRetentionRows(t, db, "")
	all := eventIDs(t, db)
	_, js := natstest.Connect(t, svc.NATSURL())

	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	recent := time.Now().AddDate(0, 0, -29).UTC().Format(time.RFC3339)
	cases := []struct{ id, body, reason string }{
		{"below-min", `{"retentionDays": 29}`, "retentionDays: is 29, less than the minimum retention of 30 days"},
		{"zero-days", `{"retentionDays": 0}`, "retentionDays: is 0, less than the minimum retention"},
		{"future", `{"beforeDate": "` + future + `"}`, "beforeDate: cutoff " + future + " is in the future"},
		{"too-recent", `{"beforeDate": "` + recent + `"}`, "beforeDate: cutoff " + recent + " is newer than the minimum retention of 30 days"},
		{"invalid-date", `{"beforeDate": "2025-02-30T00:00:00Z"}`, "beforeDate: must be an RFC 3339 time"},
		{"non-string-exclude", `{"retentionDays": 90, "excludeActions": ["a", 42]}`, "excludeActions[1]: must be a string"},
		{"both", `{"retentionDays": 90, "beforeDate": "2020-01-01T00:00:00Z"}`, "beforeDate: set either beforeDate or retentionDays, not both"},
		{"neither", `{"excludeActions": null}`, "retentionDays: is required"},
		{"unknown", `{"retentionDays": 90, "olderThanDays": 3}`, "olderThanDays: unknown field"},
		{"not-json", `retention please`, "(message): must be a JSON object"},
	}
	var msgs []*nats.Msg
	for _, c := range cases {
		msgs = append(msgs, servicetest.EventMsg("audit.cleanup", c.id, c.body))
	}
	servicetest.PublishAll(t, js, msgs)
	var got map[string]string
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		got = poisoned(t, js)
		return len(got) == len(cases), fmt.Sprintf("%d of %d poisoned: %v", len(got), len(cases), got)
	})
	for _, c := range cases {
		if !strings.HasPrefix(got[c.id], c.reason) {
			t.Errorf("%s: reason %q, want it to start with %q", c.id, got[c.id], c.reason)
		}
	}
	if ids := eventIDs(t, db); !reflect.DeepEqual(ids, all) {
		t.Fatalf("a rejected cleanup deleted rows: %v", ids)
	}
	if runs := cleanupEvents(t, db); len(runs) != 0 {
		t.Fatalf("rejected cleanups were recorded: %+v", runs)
	}

	// The CLI's job is refused on its request, naming the rule.
	out, err := runCLI(t, env, svc, "cleanup", "--retention-days", "5", "--timeout", "30s")
	if err == nil || !strings.Contains(err.Error(), "audit.admin.cleanup answered 400: retentionDays: is 5, less than the minimum retention of 30 days") {
		t.Fatalf("cli: %v\n%s", err, out)
	}
}

// scheduleShow returns the output of "auditq schedule show".
func scheduleShow(t *testing.T, env map[string]string, svc *service.Service) string {
	t.Helper()
	out, err := runCLI(t, env, svc, "schedule", "show")
	if err != nil {
		t.Fatalf("schedule show: %v\n%s", err, out)
	}
	return out
}

func TestScheduledCleanupFiresSurvivesRestartAndFollowsConfig(t *testing.T) {
	env := cleanupEnv(t)
	env["AUDITQ_CLEANUP_CRON"] = "* * * * * *" // every second
	env["AUDITQ_RETENTION_DAYS"] = "90"
	env["AUDITQ_CLEANUP_EXCLUDE_ACTIONS"] = "security.breach,admin.access"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)

	show := scheduleShow(t, env, svc)
	if !strings.Contains(show, "audit.schedule.cleanup") || !strings.Contains(show, "* * * * * *") ||
		!strings.Contains(show, `{"retentionDays":90,"excludeActions":["security.breach","admin.access"]}`) {
		t.Fatalf("schedule show:\n%s", show)
	}

	// Fires the handler: old rows go, excluded, held and recent ones stay.
	keep := seedRetentionRows(t, db, "a-")
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		got := eventIDs(t, db)
		return reflect.DeepEqual(got, keep), fmt.Sprintf("rows %v, want %v", got, keep)
	})
	// The run that deleted them is recorded (just after its last chunk).
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
		runs := cleanupEvents(t, db)
		for _, r := range runs {
			if r.Details.DeletedCount == 4 {
				ok := r.Details.Trigger == "schedule" && strings.HasPrefix(r.RequestID, "AUDIT:") &&
					reflect.DeepEqual(r.Details.ExcludeActions, []string{"security.breach", "admin.access"})
				return ok, fmt.Sprintf("deleting run: %+v", r)
			}
		}
		return false, fmt.Sprintf("no run deleted 4 rows: %+v", runs)
	})

	// Other jobs are consumed and removed from the work queue meanwhile;
	// the schedule stays and keeps firing.
	_, js := natstest.Connect(t, svc.NATSURL())
	var msgs []*nats.Msg
	for i := range 50 {
		msgs = append(msgs, servicetest.EventMsg("audit.log", fmt.Sprintf("live-%d", i), servicetest.EventJSON(fmt.Sprintf("live-%d", i), "user.login")))
	}
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'live-%'")
		return n == 50, fmt.Sprintf("%d of 50 ingested", n)
	})
	before := len(cleanupEvents(t, db))
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := len(cleanupEvents(t, db))
		return n >= before+2, fmt.Sprintf("%d scheduled runs, want at least %d", n, before+2)
	})

	// Restart: the schedule is still there and fires again.
	_ = svc.Close()
	svc = servicetest.Start(t, env)
	keep = append(keep, seedRetentionRows(t, db, "b-")...)
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'b-old%'")
		return n == 0, fmt.Sprintf("%d old rows left after restart", n)
	})
	if n := servicetest.CountRows(t, db, "id LIKE 'b-keep%'"); n != 7 {
		t.Fatalf("%d b-keep rows, want 7", n)
	}

	// A changed configuration replaces the schedule at the next start...
	_ = svc.Close()
	env["AUDITQ_CLEANUP_CRON"] = "0 30 4 * * *"
	env["AUDITQ_CLEANUP_TIMEZONE"] = "Europe/Berlin"
	svc = servicetest.Start(t, env)
	show = scheduleShow(t, env, svc)
	if !strings.Contains(show, "0 30 4 * * *") || !strings.Contains(show, "Europe/Berlin") || strings.Contains(show, "* * * * * *") {
		t.Fatalf("schedule show after the change:\n%s", show)
	}
	// ... and "off" removes it.
	_ = svc.Close()
	env["AUDITQ_CLEANUP_CRON"] = "off"
	svc = servicetest.Start(t, env)
	if show := scheduleShow(t, env, svc); strings.Contains(show, "audit.schedule.cleanup") {
		t.Fatalf("schedule show after off:\n%s", show)
	}
}

func TestTwoInstancesRunOneCleanupPerFiring(t *testing.T) {
	env := cleanupEnv(t)
	env["AUDITQ_CLEANUP_CRON"] = "@every 1s"
	env["AUDITQ_RETENTION_DAYS"] = "90"
	env["AUDITQ_CLEANUP_EXCLUDE_ACTIONS"] = "security.breach,admin.access"
	started := time.Now()
	first := servicetest.Start(t, env)
	env2 := maps.Clone(env)
	env2["AUDITQ_NATS_URL"] = first.NATSURL()
	second := servicetest.Start(t, env2)
	db := servicetest.OpenDB(t, env)
	keep := seedRetentionRows(t, db, "")

	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := len(cleanupEvents(t, db))
		return n >= 4, fmt.Sprintf("%d scheduled runs", n)
	})
	// Stop the schedule, then let the last firings drain.
	_, js := natstest.Connect(t, first.NATSURL())
	ctx := context.Background()
	if _, err := natsjs.NewScheduler(js, natsjs.StreamAudit, "audit.schedule.").Remove(ctx, "cleanup"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	cons, err := js.Consumer(ctx, natsjs.StreamAudit, natsjs.ConsumerName("audit.cleanup"))
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0, fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
	})

	runs := cleanupEvents(t, db)
	const handled = `auditq_handler_duration_seconds_count{handler="audit.cleanup",outcome="ok"}`
	perInstance := []float64{servicetest.Metric(t, first.HTTPAddr(), handled), servicetest.Metric(t, second.HTTPAddr(), handled)}
	t.Logf("%d firings in %s, handled %v by the two instances", len(runs), stopped.Sub(started).Round(time.Millisecond), perInstance)
	if total := int(perInstance[0] + perInstance[1]); total != len(runs) {
		t.Fatalf("the instances handled %v cleanups, %d were recorded: a firing was handled twice", perInstance, len(runs))
	}
	// One firing per second of the schedule's life, not one per instance.
	if limit := int(stopped.Sub(started).Seconds()) + 2; len(runs) > limit {
		t.Fatalf("%d cleanups in %s: more than one per firing", len(runs), stopped.Sub(started))
	}
	seen := map[string]bool{}
	for _, r := range runs {
		if seen[r.RequestID] || r.Details.Trigger != "schedule" {
			t.Fatalf("run %+v repeated or not scheduled", r)
		}
		seen[r.RequestID] = true
	}
	if got := eventIDs(t, db); !reflect.DeepEqual(got, keep) {
		t.Fatalf("survivors:\n got  %v\n want %v", got, keep)
	}
}

// TestScheduledJobBreakingAGuardRailIsPoisonedOnce: a fired job carries
// Nats-Scheduler, which JetStream refuses from clients; it must still reach
// the poison stream, and be acked rather than redelivered for ever.
func TestScheduledJobBreakingAGuardRailIsPoisonedOnce(t *testing.T) {
	env := cleanupEnv(t)
	env["AUDITQ_CLEANUP_CRON"] = "@yearly" // schedules on, none firing during the test
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seedRetentionRows(t, db, "")
	all := eventIDs(t, db)
	_, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()
	sc := natsjs.NewScheduler(js, natsjs.StreamAudit, "audit.schedule.")
	if _, err := sc.Install(ctx, natsjs.Schedule{Name: "bad", Pattern: "@every 1s", Target: "audit.cleanup",
		Payload: []byte(`{"retentionDays": 1}`)}); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.Metric(t, svc.HTTPAddr(), `auditq_messages_poisoned_total{handler="audit.cleanup"}`)
		return n >= 2, fmt.Sprintf("%v poisoned", n)
	})
	if _, err := sc.Remove(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	cons, _ := js.Consumer(ctx, natsjs.StreamAudit, natsjs.ConsumerName("audit.cleanup"))
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0,
			fmt.Sprintf("pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
	})
	reasons := poisoned(t, js)
	if len(reasons) == 0 {
		t.Fatal("nothing on audit.poison.cleanup")
	}
	for id, r := range reasons {
		if !strings.HasPrefix(r, "retentionDays: is 1, less than the minimum retention") {
			t.Fatalf("%s: reason %q", id, r)
		}
	}
	if got := eventIDs(t, db); !reflect.DeepEqual(got, all) {
		t.Fatalf("rows deleted: %v", got)
	}
}
