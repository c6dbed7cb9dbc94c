package service_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

func decodeInto[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.ok(t).data, &v); err != nil {
		t.Fatalf("decode %s: %v", a.data, err)
	}
	return v
}

// The poison stream over request-reply: listed newest first and paged,
// one message read whole, one replayed corrected and stored, one
// discarded; bad and unknown sequences refused; every read and both
// actions recorded in the trail with who asked.
func TestAdminPoisonRequests(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	const who = "Auditq-Requester"
	for i := range 3 {
		id := fmt.Sprintf("bad-%d", i)
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", id,
			fmt.Sprintf(`{"id":%q,"action":"user.login","resourceType":"user"}`, id))})
		waitPoison(t, js, uint64(i+1)) // one at a time: poisoned concurrently, they would land in either order
	}
	var list contract.PoisonList
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		list = decodeInto[contract.PoisonList](t, ask(t, nc, contract.SubjectAdminPoisonList, `{}`))
		return len(list.Messages) == 3, fmt.Sprintf("%d poison messages listed", len(list.Messages))
	})
	if list.NextCursor != nil {
		t.Errorf("one page of 3 has a next cursor %q", *list.NextCursor)
	}
	for i, m := range list.Messages {
		if m.ID != fmt.Sprintf("bad-%d", 2-i) || m.Job != "log" || !strings.Contains(m.Reason, "resourceId") ||
			!strings.HasPrefix(m.PayloadPreview, `{"id":`) || m.Size != len(m.PayloadPreview) || m.Target != "audit.log" {
			t.Errorf("message %d: %+v; want bad-%d of job log, newest first, rejected for resourceId", i, m, 2-i)
		}
	}
	// Paged: one at a time, newest first, no repeats.
	var seen []uint64
	cursor := ""
	for range 4 {
		body := `{"limit":1}`
		if cursor != "" {
			body = fmt.Sprintf(`{"limit":1,"cursor":%q}`, cursor)
		}
		page := decodeInto[contract.PoisonList](t, ask(t, nc, contract.SubjectAdminPoisonList, body))
		for _, m := range page.Messages {
			seen = append(seen, m.Seq)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if want := []uint64{list.Messages[0].Seq, list.Messages[1].Seq, list.Messages[2].Seq}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("pages of one gave %v, want %v", seen, want)
	}

	newest, oldest := list.Messages[0], list.Messages[2]
	d := decodeInto[contract.PoisonDetail](t, ask(t, nc, contract.SubjectAdminPoisonGet, fmt.Sprintf(`{"seq":%d}`, newest.Seq)))
	if d.Payload == nil || *d.Payload != `{"id":"bad-2","action":"user.login","resourceType":"user"}` ||
		len(d.Headers["reason_poisoned"]) != 1 || d.Headers["reason_poisoned"][0] != newest.Reason {
		t.Errorf("poison.get: payload %v, headers %v", d.Payload, d.Headers)
	}

	for _, c := range []struct{ subject, body, code string }{
		{contract.SubjectAdminPoisonGet, `{}`, "400"},
		{contract.SubjectAdminPoisonGet, `{"seq":999}`, "404"},
		{contract.SubjectAdminPoisonReplay, `{"seq":999}`, "404"},
		{contract.SubjectAdminPoisonDiscard, `{"seq":0}`, "400"},
		{contract.SubjectAdminPoisonList, `{"job":"nope"}`, "400"},
		{contract.SubjectAdminPoisonList, `{"cursor":"x"}`, "400"},
		{contract.SubjectAdminPoisonList, `{"limit":101}`, "400"},
	} {
		if a := ask(t, nc, c.subject, c.body); a.code != c.code {
			t.Errorf("%s %s: answered %q %s, want %s", c.subject, c.body, a.code, a.error, c.code)
		}
	}

	// Replay the newest, corrected; discard the oldest.
	fixed := `{"id":"bad-2","action":"user.login","resourceType":"user","resourceId":"u-2"}`
	body, _ := json.Marshal(map[string]any{"seq": newest.Seq, "payload": fixed})
	r := decodeInto[contract.PoisonReplayed](t, ask(t, nc, contract.SubjectAdminPoisonReplay, string(body), who, "operator:alice"))
	if r.PoisonSeq != newest.Seq || r.Subject != "audit.log" || r.ID != "bad-2" || r.Duplicate {
		t.Errorf("replay: %+v", r)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id = 'bad-2' AND resource_id = 'u-2'")
		return n == 1, fmt.Sprintf("%d rows of the replayed event", n)
	})
	disc := decodeInto[contract.PoisonDiscarded](t, ask(t, nc, contract.SubjectAdminPoisonDiscard, fmt.Sprintf(`{"seq":%d}`, oldest.Seq), who, "operator:bob"))
	if disc.Discarded.Seq != oldest.Seq || disc.Discarded.ID != "bad-0" {
		t.Errorf("discard: %+v", disc.Discarded)
	}
	for _, seq := range []uint64{newest.Seq, oldest.Seq} {
		if a := ask(t, nc, contract.SubjectAdminPoisonGet, fmt.Sprintf(`{"seq":%d}`, seq)); a.code != "404" {
			t.Errorf("poison message %d after replay or discard: %q, want 404", seq, a.code)
		}
	}
	left := decodeInto[contract.PoisonList](t, ask(t, nc, contract.SubjectAdminPoisonList, `{"job":"log"}`))
	if len(left.Messages) != 1 || left.Messages[0].ID != "bad-1" {
		t.Errorf("left in the poison stream: %+v, want bad-1 only", left.Messages)
	}

	// The operator's actions, in the trail with who asked.
	for _, c := range []struct{ action, resource, claim string }{
		{"audit.poison.replay", fmt.Sprintf("audit.poison.log:%d", newest.Seq), "operator:alice"},
		{"audit.poison.discard", fmt.Sprintf("audit.poison.log:%d", oldest.Seq), "operator:bob"},
	} {
		var rows []struct {
			Details json.RawMessage `bun:"details"`
			Success bool            `bun:"success"`
			Type    string          `bun:"resource_type"`
		}
		servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
			rows = nil
			err := db.NewSelect().Table("audit_logs").Column("details", "success", "resource_type").
				Where("action = ? AND resource_id = ?", c.action, c.resource).Scan(t.Context(), &rows)
			return err == nil && len(rows) == 1, fmt.Sprintf("%d %s events on %s (%v)", len(rows), c.action, c.resource, err)
		})
		var det struct {
			Requester struct{ UnverifiedClaim string }
			Message   struct{ Job, Reason string }
		}
		_ = json.Unmarshal(rows[0].Details, &det)
		if !rows[0].Success || rows[0].Type != "poison_message" || det.Requester.UnverifiedClaim != c.claim ||
			det.Message.Job != "log" || !strings.Contains(det.Message.Reason, "resourceId") {
			t.Errorf("%s event: success %v, type %s, details %s", c.action, rows[0].Success, rows[0].Type, rows[0].Details)
		}
	}
	// The failed replay of an unknown sequence is recorded too, as failed.
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'audit.poison.replay' AND resource_id = 'audit.poison:999' AND NOT success AND error_message = 'not found'")
		return n == 1, fmt.Sprintf("%d failed replays recorded", n)
	})
	// Reads past validation are recorded: of audit.admin.poison.get, the
	// one answered and the three of sequences not held (the 400 is not).
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		ok := servicetest.CountRows(t, db, "action = 'audit.admin' AND resource_id = 'audit.admin.poison.get' AND success")
		failed := servicetest.CountRows(t, db, "action = 'audit.admin' AND resource_id = 'audit.admin.poison.get' AND NOT success AND error_message = 'not found'")
		return ok == 1 && failed == 3, fmt.Sprintf("poison.get reads recorded: %d answered, %d not found; want 1 and 3", ok, failed)
	})
	if n := servicetest.CountRows(t, db, "action = 'audit.admin' AND resource_id = 'audit.admin.poison.list'"); n < 5 {
		t.Errorf("%d poison.list reads recorded, want at least 5", n)
	}
}

// The schedules with their next firing, a dry-run cleanup by the
// schedule's settings and by a date (through the retention policy: the
// guard rails hold, nothing is deleted), the cleanup runs from the trail,
// paged newest first, and the status.
func TestAdminSchedulesCleanupsAndStatus(t *testing.T) {
	env := cleanupEnv(t)
	env["AUDITQ_CLEANUP_CRON"] = "0 0 3 * * *"
	env["AUDITQ_RETENTION_DAYS"] = "90"
	env["AUDITQ_CLEANUP_EXCLUDE_ACTIONS"] = "security.breach,admin.access"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc := natsClient(t, svc)
	seedRetentionRows(t, db, "")
	seeded := func() string {
		return fmt.Sprint(slices.DeleteFunc(eventIDs(t, db), func(id string) bool { return strings.HasPrefix(id, "read-") }))
	}
	all := seeded()

	sched := decodeInto[contract.ScheduleList](t, ask(t, nc, contract.SubjectAdminSchedules, ``))
	if len(sched.Schedules) != 1 {
		t.Fatalf("schedules: %+v, want the cleanup's only", sched.Schedules)
	}
	s := sched.Schedules[0]
	if s.Name != "cleanup" || s.Subject != "audit.schedule.cleanup" || s.Pattern != "0 0 3 * * *" || s.TimeZone != "UTC" ||
		s.Target != "audit.cleanup" || !strings.Contains(s.Payload, `"retentionDays":90`) || s.Next == nil ||
		!s.Next.After(time.Now()) || s.Next.Hour() != 3 || time.Until(*s.Next) > 24*time.Hour {
		t.Errorf("cleanup schedule: %+v (next %v)", s, s.Next)
	}

	dry := decodeInto[contract.CleanupDryRun](t, ask(t, nc, contract.SubjectAdminCleanupDryRun, `{}`))
	if !dry.Scheduled || dry.RetentionDays == nil || *dry.RetentionDays != 90 || dry.WouldDelete != 4 ||
		fmt.Sprint(dry.ExcludeActions) != "[security.breach admin.access]" {
		t.Errorf("dry run of the scheduled cleanup: %+v", dry)
	}
	before := time.Now().UTC().AddDate(0, 0, -95).Format(time.RFC3339)
	dry = decodeInto[contract.CleanupDryRun](t, ask(t, nc, contract.SubjectAdminCleanupDryRun, fmt.Sprintf(`{"beforeDate":%q}`, before)))
	if dry.Scheduled || dry.BeforeDate == nil || dry.WouldDelete != 5 || dry.Cutoff.Format(time.RFC3339) != before {
		t.Errorf("dry run before %s: %+v", before, dry)
	}
	for body, field := range map[string]string{`{"retentionDays":7}`: "retentionDays", `{"retentionDays":90,"dryRun":false}`: "dryRun",
		`{"retentionDays":"90"}`: "retentionDays", `[]`: "(request)", `null`: "(request)"} {
		a := ask(t, nc, contract.SubjectAdminCleanupDryRun, body)
		var e struct{ Field string }
		_ = json.Unmarshal(a.data, &e)
		if a.code != "400" || e.Field != field {
			t.Errorf("dry run %s: %q %s (field %q), want 400 naming %s", body, a.code, a.error, e.Field, field)
		}
	}
	if got := seeded(); got != all {
		t.Fatalf("the dry runs deleted rows: %v", got)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'audit.admin' AND resource_id = 'audit.admin.cleanup.dryrun'")
		return n == 2, fmt.Sprintf("%d dry runs recorded as reads, want 2", n)
	})

	// Two runs of the cleanup job: listed from their events, newest first.
	if out, err := runCLI(t, env, svc, "cleanup", "--retention-days", "90", "--timeout", "30s"); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if out, err := runCLI(t, env, svc, "cleanup", "--retention-days", "60", "--dry-run", "--timeout", "30s"); err != nil {
		t.Fatalf("cleanup --dry-run: %v\n%s", err, out)
	}
	page := decodeInto[contract.CleanupRunList](t, ask(t, nc, contract.SubjectAdminCleanups, `{"limit":1}`))
	if len(page.Cleanups) != 1 || page.NextCursor == nil || !page.Cleanups[0].DryRun {
		t.Fatalf("first page: %+v", page)
	}
	next := decodeInto[contract.CleanupRunList](t, ask(t, nc, contract.SubjectAdminCleanups, fmt.Sprintf(`{"limit":1,"cursor":%q}`, *page.NextCursor)))
	if len(next.Cleanups) != 1 || next.NextCursor != nil {
		t.Fatalf("second page: %+v", next)
	}
	run := next.Cleanups[0]
	if run.DryRun || run.DeletedCount != 6 || run.Trigger != "manual" || !strings.HasPrefix(run.JobID, "cleanup-") ||
		run.EventID != "cleanup:"+run.JobID || time.Since(run.RanAt) > time.Minute || len(run.ExcludeActions) != 0 {
		t.Errorf("the cleanup run: %+v", run)
	}
	if a := ask(t, nc, contract.SubjectAdminCleanups, `{"cursor":"nope"}`); a.code != "400" {
		t.Errorf("bad cursor: %q %s", a.code, a.error)
	}

	// The cleanup wrote a checkpoint; the status shows it.
	st := decodeInto[contract.Status](t, ask(t, nc, contract.SubjectAdminStatus, `{}`))
	if !st.TamperEvidence || st.Checkpoint == nil || st.CheckpointAgeSeconds == nil || *st.CheckpointAgeSeconds < 0 ||
		*st.CheckpointAgeSeconds > 60 || st.NextCheckpointDue == nil || !st.NextCheckpointDue.Equal(st.Checkpoint.Time.Add(time.Hour)) {
		t.Errorf("status checkpoint: %+v", st)
	}
	if _, ok := st.Pending["audit.log"]; !ok || len(st.Poison) != 4 || st.Poison["log"].Messages != 0 || st.Poison["log"].Oldest != nil {
		t.Errorf("status backlog: pending %v, poison %v", st.Pending, st.Poison)
	}
}

// With tamper evidence off the status has no checkpoint.
func TestAdminStatusWithoutTamperEvidence(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_TAMPER_EVIDENCE"] = "off"
	svc := servicetest.Start(t, env)
	st := decodeInto[contract.Status](t, ask(t, natsClient(t, svc), contract.SubjectAdminStatus, ``))
	if st.TamperEvidence || st.Checkpoint != nil || st.CheckpointAgeSeconds != nil || st.NextCheckpointDue != nil {
		t.Errorf("status with tamper evidence off: %+v", st)
	}
}

// "auditq verify" records each finished verification of the whole trail,
// and audit.admin.status reports the newest: none before the first; an
// OK run with its counts and the checkpoint it reached; after a row is
// changed, a failed run naming the event.
func TestAdminStatusReportsTheLastVerify(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	if st := decodeInto[contract.Status](t, ask(t, nc, contract.SubjectAdminStatus, `{}`)); st.LastVerify != nil {
		t.Fatalf("lastVerify before any verify: %+v", st.LastVerify)
	}
	var msgs []*nats.Msg
	for i := range 5 {
		id := fmt.Sprintf("lv-%d", i)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "user.login")))
	}
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'lv-%'")
		return n == 5, fmt.Sprintf("%d of 5 rows", n)
	})
	cp := decodeInto[struct{ Checkpoint struct{ Seq int64 } }](t, ask(t, nc, contract.SubjectCheckpointWrite, `{}`))

	before := time.Now().UTC()
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	answer := ask(t, nc, contract.SubjectAdminStatus, `{}`)
	st := decodeInto[contract.Status](t, answer)
	v := st.LastVerify
	if v == nil {
		t.Fatal("no lastVerify after auditq verify")
	}
	if err := schemaErr(t, schemasServed(t, nc)["admin-status"], answer.data); err != nil {
		t.Errorf("the status with a last verify breaks its schema: %v\n%s", err, answer.data)
	}
	rows := int64(servicetest.CountRows(t, db, "true"))
	if !v.OK || v.FailureCount != 0 || v.FirstFailure != "" || v.Trigger != "auditq verify" || v.Events < 5 || v.Events > rows ||
		v.Batches < 1 || v.BatchSeq < 1 || v.CheckpointSeq < cp.Checkpoint.Seq || v.Checkpoints < 1 ||
		v.FinishedAt.Before(before) || v.StartedAt.After(v.FinishedAt) || v.DurationMs < 0 {
		t.Errorf("lastVerify after an OK verify: %+v (rows %d, checkpoint %d)", v, rows, cp.Checkpoint.Seq)
	}

	if _, err := db.ExecContext(t.Context(), `UPDATE audit_logs SET action = 'user.logout' WHERE id = 'lv-2'`); err != nil {
		t.Fatal(err)
	}
	if out, err := runVerify(t, env); err == nil {
		t.Fatalf("verify after a changed row passed:\n%s", out)
	}
	v = decodeInto[contract.Status](t, ask(t, nc, contract.SubjectAdminStatus, `{}`)).LastVerify
	if v == nil || v.OK || v.FailureCount < 1 || !strings.Contains(v.FirstFailure, "lv-2") {
		t.Errorf("lastVerify after a failed verify: %+v, want failed naming lv-2", v)
	}
	var runs int
	if err := db.NewSelect().Table("audit_verify_runs").ColumnExpr("count(*)").Scan(t.Context(), &runs); err != nil || runs != 2 {
		t.Errorf("audit_verify_runs holds %d rows (%v), want 2", runs, err)
	}
}
