package command_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// memStore is an in-memory audit store: the retention store, the writer
// and the lookup of the cleanup handler at once.
type memStore struct {
	events    map[string]audit.Event
	expired   int64 // rows DeleteExpired/CountExpired report
	deletes   int
	failAfter error
	results   []command.CleanupResult
}

func (m *memStore) DeleteExpired(_ context.Context, c audit.Cleanup) (int64, error) {
	m.deletes++
	if m.failAfter != nil {
		return 3, m.failAfter
	}
	n := m.expired
	m.expired = 0
	return n, nil
}

func (m *memStore) CountExpired(context.Context, audit.Cleanup) (int64, error) { return m.expired, nil }

func (m *memStore) Write(_ context.Context, events []audit.Event) (audit.WriteResult, error) {
	var r audit.WriteResult
	for _, e := range events {
		if _, ok := m.events[e.ID]; ok {
			r.Duplicates++
			continue
		}
		m.events[e.ID] = e
		r.Inserted++
	}
	return r, nil
}

func (m *memStore) Get(_ context.Context, tenant, id string) (audit.Event, error) {
	if e, ok := m.events[id]; ok && e.Tenant == tenant {
		return e, nil
	}
	return audit.Event{}, audit.ErrNotFound
}

func (m *memStore) CleanupResult(_ context.Context, r command.CleanupResult) error {
	m.results = append(m.results, r)
	return nil
}

func newCleanup(m *memStore) command.RunCleanupHandler {
	return command.NewRunCleanupHandler(m, m, m, m, audit.RetentionPolicy{MinDays: 30})
}

func job(id, body string) command.CleanupJob {
	req, err := audit.DecodeCleanupRequest([]byte(body))
	if err != nil {
		panic(err)
	}
	return command.CleanupJob{ID: id, Trigger: command.TriggerSchedule, AsOf: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), Request: req}
}

func TestRunCleanupRecordsOnceAndRedeliveryDeletesNothingMore(t *testing.T) {
	ctx := context.Background()
	m := &memStore{events: map[string]audit.Event{}, expired: 42}
	h := newCleanup(m)
	j := job("AUDIT:9", `{"retentionDays": 365, "excludeActions": ["security.breach"]}`)
	res, err := h.Handle(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedCount != 42 || res.Trigger != "schedule" || res.EventID != "cleanup:AUDIT:9" ||
		!res.Cutoff.Equal(time.Date(2025, 11, 25, 3, 0, 0, 0, time.UTC)) {
		t.Fatalf("result %+v", res)
	}
	ev := m.events["cleanup:AUDIT:9"]
	if ev.Action != "audit.cleanup" || ev.ResourceType != "audit_log" || ev.RequestID != "AUDIT:9" || !ev.IsSystem() ||
		!strings.Contains(string(ev.Details), `"deletedCount":42`) || !strings.Contains(string(ev.Details), `"trigger":"schedule"`) {
		t.Fatalf("event %+v %s", ev, ev.Details)
	}

	// The same job again (a redelivery after a lost ack): nothing deleted,
	// nothing recorded, the recorded result reported again.
	m.expired = 5
	again, err := h.Handle(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if m.deletes != 1 || len(m.events) != 1 || again.DeletedCount != 42 || len(m.results) != 2 || !reflect.DeepEqual(m.results[1], m.results[0]) {
		t.Fatalf("redelivery: deletes=%d events=%d result=%+v", m.deletes, len(m.events), again)
	}
}

func TestRunCleanupRejectsAndFails(t *testing.T) {
	ctx := context.Background()
	m := &memStore{events: map[string]audit.Event{}, expired: 1}
	h := newCleanup(m)
	_, err := h.Handle(ctx, job("j1", `{"retentionDays": 7}`))
	var v *audit.ValidationError
	if !errors.As(err, &v) || v.Field != "retentionDays" || m.deletes != 0 || len(m.events) != 0 || len(m.results) != 0 {
		t.Fatalf("guard rail: err=%v deletes=%d", err, m.deletes)
	}

	m.failAfter = errors.New("connection reset")
	_, err = h.Handle(ctx, job("j2", `{"retentionDays": 90}`))
	if err == nil || audit.IsPermanent(err) || !strings.Contains(err.Error(), "deleted 3 rows") || len(m.events) != 0 {
		t.Fatalf("transient failure: %v (events %d)", err, len(m.events))
	}

	m.failAfter = nil
	res, err := h.Handle(ctx, job("j3", `{"retentionDays": 90, "dryRun": true}`))
	if err != nil || !res.DryRun || res.DeletedCount != 1 || m.deletes != 1 {
		t.Fatalf("dry run: %+v %v deletes=%d", res, err, m.deletes)
	}
	if long := command.CleanupEventID(strings.Repeat("x", 300)); len(long) > audit.MaxIDLen || !strings.HasPrefix(long, "cleanup:sha256:") {
		t.Fatalf("long job id gives event id %q", long)
	}
}
