package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// fakeStore is an in-memory audit.ReportReader and audit.ReportStore.
type fakeStore struct {
	reads   int
	readErr error
	byJob   map[string]audit.StoredReport
	saved   []audit.StoredReport
}

func (f *fakeStore) ReportCounts(context.Context, audit.Period) (audit.ReportCounts, error) {
	f.reads++
	return audit.ReportCounts{Actions: []audit.ActionTally{{Action: "a", Count: 2, Failed: 1}}}, f.readErr
}

func (f *fakeStore) SaveReport(_ context.Context, r audit.StoredReport, jobID string) (audit.StoredReport, error) {
	if got, ok := f.byJob[jobID]; ok && jobID != "" {
		return got, nil
	}
	r.ID = int64(len(f.saved) + 1)
	f.saved = append(f.saved, r)
	if jobID != "" {
		f.byJob[jobID] = r
	}
	return r, nil
}

func (f *fakeStore) ReportByJob(_ context.Context, jobID string) (audit.StoredReport, error) {
	if r, ok := f.byJob[jobID]; ok {
		return r, nil
	}
	return audit.StoredReport{}, audit.ErrNotFound
}

func (f *fakeStore) GetReport(context.Context, int64) (audit.StoredReport, error) {
	return audit.StoredReport{}, audit.ErrNotFound
}

func (f *fakeStore) ListReports(context.Context, string, int64, int) ([]audit.ReportListItem, error) {
	return nil, nil
}

// recorder keeps recorded events; err makes recording fail.
type recorder struct {
	events []audit.Event
	err    error
}

func (r *recorder) Write(_ context.Context, evs []audit.Event) (audit.WriteResult, error) {
	if r.err != nil {
		return audit.WriteResult{}, r.err
	}
	r.events = append(r.events, evs...)
	return audit.WriteResult{Inserted: len(evs)}, nil
}

var clock = func() time.Time { return time.Date(2026, 11, 25, 0, 15, 0, 0, time.UTC) }

func TestReportJobIsIdempotent(t *testing.T) {
	store := &fakeStore{byJob: map[string]audit.StoredReport{}}
	rec := &recorder{}
	h := mustReport(t, store, NewReadAuditor(rec, ReadAuditorConfig{Now: clock}))
	in := ReportInput{Request: audit.ReportRequest{ReportType: "daily"}, Trigger: audit.TriggerSchedule, JobID: "AUDIT:42",
		Now: time.Date(2026, 11, 25, 0, 15, 0, 0, time.UTC)}
	first, err := h.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if first.Period.Start.Format(time.DateOnly) != "2026-11-24" || first.Trigger != "schedule" || first.Summary.Total != 2 {
		t.Fatalf("report: %+v", first)
	}
	// Redelivered a day later: the same report, not read again, and the
	// same read event id (a duplicate, so recorded once).
	in.Now = in.Now.Add(24 * time.Hour)
	again, err := h.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || store.reads != 1 || len(store.saved) != 1 {
		t.Fatalf("redelivery: report %d (first %d), %d reads, %d saved", again.ID, first.ID, store.reads, len(store.saved))
	}
	if len(rec.events) != 2 || rec.events[0].ID != "audit.report.generate:AUDIT:42" || rec.events[1].ID != rec.events[0].ID {
		t.Fatalf("read events: %+v", rec.events)
	}
	if e := rec.events[0]; e.Action != "audit.report" || e.ResourceType != "audit_log" || e.ResourceID != "audit.report.generate" || !e.Success || e.UserID != "" {
		t.Fatalf("read event: %+v", e)
	}
}

// The ids of a request's read events grow with time: "read-", the Unix
// time in milliseconds (12 hex digits), 20 random hex digits.
func TestReadsOfRequestsGetTimeOrderedIDs(t *testing.T) {
	store := &fakeStore{byJob: map[string]audit.StoredReport{}}
	rec := &recorder{}
	at := clock()
	tick := func() time.Time { at = at.Add(time.Millisecond); return at }
	h := mustReport(t, store, NewReadAuditor(rec, ReadAuditorConfig{Now: tick}))
	in := ReportInput{Request: audit.ReportRequest{ReportType: "daily"}, Requester: Requester{RequestInfo: `{"acc":"APP","user":"bob"}`}}
	for range 50 {
		if _, err := h.Handle(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	for i, e := range rec.events {
		if len(e.ID) != len("read-")+32 || strings.Trim(e.ID[len("read-"):], "0123456789abcdef") != "" {
			t.Fatalf("read event id %q: want read- and 32 lower-case hex digits", e.ID)
		}
		if want := fmt.Sprintf("read-%012x", e.OccurredAt.UnixMilli()); e.ID[:len(want)] != want {
			t.Fatalf("read event id %q: want the time first, %s", e.ID, want)
		}
		if i > 0 && e.ID <= rec.events[i-1].ID {
			t.Fatalf("read event id %q sorts before the earlier %q", e.ID, rec.events[i-1].ID)
		}
	}
}

func TestReadsOfRequestsGetFreshIDs(t *testing.T) {
	store := &fakeStore{byJob: map[string]audit.StoredReport{}}
	rec := &recorder{}
	h := mustReport(t, store, NewReadAuditor(rec, ReadAuditorConfig{Now: clock}))
	in := ReportInput{Request: audit.ReportRequest{ReportType: "daily"}, Requester: Requester{
		RequestInfo: `{"acc":"APP","user":"bob"}`, Claimed: "alice\x00\n" + strings.Repeat("x", 300)}}
	for range 2 {
		if _, err := h.Handle(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.events) != 2 || rec.events[0].ID == rec.events[1].ID || !strings.HasPrefix(rec.events[0].ID, "read-") {
		t.Fatalf("read events: %+v", rec.events)
	}
	var details struct {
		Requester struct {
			NATSRequestInfo map[string]string `json:"natsRequestInfo"`
			UnverifiedClaim string            `json:"unverifiedClaim"`
		} `json:"requester"`
		Request  audit.ReportRequest `json:"request"`
		ReportID int64               `json:"reportId"`
	}
	if err := json.Unmarshal(rec.events[0].Details, &details); err != nil {
		t.Fatal(err)
	}
	if details.Requester.NATSRequestInfo["user"] != "bob" || !strings.HasPrefix(details.Requester.UnverifiedClaim, "alicex") ||
		len([]rune(details.Requester.UnverifiedClaim)) != audit.MaxIDLen || details.ReportID != 1 || details.Request.ReportType != "daily" {
		t.Fatalf("details: %s", rec.events[0].Details)
	}
}

func TestUnrecordableReadIsNotServed(t *testing.T) {
	store := &fakeStore{byJob: map[string]audit.StoredReport{}}
	rec := &recorder{err: errors.New("database down")}
	h := mustReport(t, store, NewReadAuditor(rec, ReadAuditorConfig{Now: clock}))
	if _, err := h.Handle(context.Background(), ReportInput{Request: audit.ReportRequest{ReportType: "daily"}}); err == nil || !strings.Contains(err.Error(), "database down") {
		t.Fatalf("got %v, want the recording failure", err)
	}
	// Without a recorder nothing is recorded and the read is served.
	h = mustReport(t, store, NewReadAuditor(nil, ReadAuditorConfig{Now: clock}))
	if _, err := h.Handle(context.Background(), ReportInput{Request: audit.ReportRequest{ReportType: "daily"}}); err != nil {
		t.Fatal(err)
	}
}

func TestFailedReadIsRecordedWithoutInternalDetails(t *testing.T) {
	store := &fakeStore{byJob: map[string]audit.StoredReport{}, readErr: errors.New(`ERROR: relation "audit_logs" does not exist (SQLSTATE 42P01)`)}
	rec := &recorder{}
	h := mustReport(t, store, NewReadAuditor(rec, ReadAuditorConfig{Now: clock}))
	_, err := h.Handle(context.Background(), ReportInput{Request: audit.ReportRequest{ReportType: "daily"}})
	if err == nil {
		t.Fatal("no error")
	}
	if len(rec.events) != 1 || rec.events[0].Success || rec.events[0].ErrorMessage != "internal error" {
		t.Fatalf("read events: %+v", rec.events)
	}
	// A request that breaks a rule reads nothing and is not recorded.
	_, err = h.Handle(context.Background(), ReportInput{Request: audit.ReportRequest{ReportType: "hourly"}})
	var v *audit.ValidationError
	if !errors.As(err, &v) || v.Field != "reportType" || len(rec.events) != 1 {
		t.Fatalf("got %v, %d events", err, len(rec.events))
	}
}

func TestCursorsRoundTripAndRejectGarbage(t *testing.T) {
	c := encodeCursor(searchCursor{T: "2026-11-24T10:00:00.123456Z", ID: "evt/1"})
	req := SearchRequest{Cursor: c}
	f, err := req.filter()
	if err != nil || f.After == nil || f.After.ID != "evt/1" || !f.After.OccurredAt.Equal(time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)) {
		t.Fatalf("%+v %v", f.After, err)
	}
	if strings.ContainsAny(c, "+/=") {
		t.Fatalf("cursor %q is not URL-safe", c)
	}
	// A cursor without the event's tenant (issued before cursors carried
	// it) positions after every tenant's event of its time and id; one
	// with it, after that tenant's event.
	if f.After.Tenant != nil {
		t.Fatalf("a cursor without the event's tenant positions at tenant %q", *f.After.Tenant)
	}
	c = cursorAfter(audit.Event{ID: "evt/1", Tenant: "acme", OccurredAt: f.After.OccurredAt}, nil)
	if f, err = (SearchRequest{Cursor: c}).filter(); err != nil || f.After.Tenant == nil || *f.After.Tenant != "acme" || f.After.ID != "evt/1" {
		t.Fatalf("a cursor after acme's evt/1: %+v %v", f.After, err)
	}
	c = cursorAfter(audit.Event{ID: "evt/1", OccurredAt: f.After.OccurredAt}, nil)
	if f, err = (SearchRequest{Cursor: c}).filter(); err != nil || f.After.Tenant == nil || *f.After.Tenant != "" {
		t.Fatalf("a cursor after the default tenant's evt/1: %+v %v", f.After, err)
	}
	for _, bad := range []string{"x", "e30", encodeCursor(searchCursor{T: "yesterday", ID: "a"}), encodeCursor(searchCursor{T: "2026-11-24T10:00:00Z"}), strings.Repeat("A", 5000)} {
		_, err := SearchRequest{Cursor: bad}.filter()
		var v *audit.ValidationError
		if !errors.As(err, &v) || v.Field != "cursor" {
			t.Errorf("cursor %.20q: %v", bad, err)
		}
	}
}

// mustReport returns a ReportHandler over store with the test clock.
func mustReport(t *testing.T, store *fakeStore, reads ReadAuditor) ReportHandler {
	t.Helper()
	h, err := NewReportHandler(store, store, reads, ReportConfig{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
