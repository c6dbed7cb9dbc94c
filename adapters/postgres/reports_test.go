package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// ev is a compact test event: when (RFC 3339), who ("" = system), what,
// on which resource type, and whether it worked.
type ev struct {
	id, at, user, action, resource string
	ok                             bool
}

func insert(t *testing.T, repo *postgres.Repository, evs ...ev) {
	t.Helper()
	events := make([]audit.Event, len(evs))
	for i, e := range evs {
		at, err := time.Parse(time.RFC3339Nano, e.at)
		if err != nil {
			t.Fatal(err)
		}
		events[i] = audit.Event{ID: e.id, UserID: e.user, Action: e.action, ResourceType: e.resource,
			ResourceID: "r-" + e.id, Success: e.ok, OccurredAt: audit.Normalize(at), ReceivedAt: audit.Normalize(at)}
	}
	if _, err := repo.Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func report(t *testing.T, repo *postgres.Repository, req audit.ReportRequest) audit.Report {
	t.Helper()
	p, err := audit.ResolvePeriod(req, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := repo.ReportCounts(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return audit.BuildReport(req.ReportType, p, counts, time.Now())
}

// figures is the part of a report a test states by hand.
type figures struct {
	Summary         audit.Summary          `json:"summary"`
	TopUsers        []audit.UserCount      `json:"topUsers"`
	TopActions      []audit.ActionCount    `json:"topActions"`
	TopResources    []audit.ResourceCount  `json:"topResources"`
	FailureAnalysis []audit.ActionFailures `json:"failureAnalysis"`
}

func checkFigures(t *testing.T, name string, r audit.Report, want figures) {
	t.Helper()
	got, _ := json.Marshal(figures{r.Summary, r.TopUsers, r.TopActions, r.TopResources, r.FailureAnalysis})
	if want.TopActions == nil {
		want.TopActions = want.Summary.ActionBreakdown
	}
	for _, s := range []*[]audit.UserCount{&want.TopUsers} {
		if *s == nil {
			*s = []audit.UserCount{}
		}
	}
	if want.TopResources == nil {
		want.TopResources = []audit.ResourceCount{}
	}
	if want.FailureAnalysis == nil {
		want.FailureAnalysis = []audit.ActionFailures{}
	}
	if want.Summary.ActionBreakdown == nil {
		want.Summary.ActionBreakdown = []audit.ActionCount{}
		want.TopActions = []audit.ActionCount{}
	}
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("%s:\n got  %s\n want %s", name, got, exp)
	}
}

// The data set around Berlin's two DST changes of 2026. Each expected
// report below is worked out by hand from these rows.
var dstEvents = []ev{
	// Spring forward, Sunday 2026-03-29: the Berlin day is
	// [2026-03-28T23:00Z, 2026-03-29T22:00Z), 23 hours.
	{"s1", "2026-03-28T22:59:59.999999Z", "u1", "user.login", "user", true},    // Berlin 28th 23:59:59.999999: out
	{"s2", "2026-03-28T23:00:00Z", "u1", "user.login", "user", true},           // Berlin 00:00: first instant, in
	{"s3", "2026-03-29T00:59:59Z", "u1", "user.login", "user", true},           // 01:59:59 CET, in
	{"s4", "2026-03-29T01:00:00Z", "u2", "user.login", "user", false},          // 03:00 CEST, right after the jump, in
	{"s5", "2026-03-29T12:00:00Z", "u2", "guild.update", "guild", true},        // in
	{"s6", "2026-03-29T21:59:59.999999Z", "", "system.backup", "system", true}, // 23:59:59.999999 CEST, system, in
	{"s7", "2026-03-29T22:00:00Z", "u3", "user.logout", "user", true},          // Berlin 30th 00:00: out
	{"s8", "2026-03-29T23:30:00Z", "u3", "user.logout", "user", true},          // out in Berlin, in the UTC day
	// Fall back, Sunday 2026-10-25: the Berlin day is
	// [2026-10-24T22:00Z, 2026-10-25T23:00Z), 25 hours.
	{"f1", "2026-10-24T21:59:59Z", "u4", "a", "doc", true},        // out
	{"f2", "2026-10-24T22:00:00Z", "u4", "a", "doc", true},        // 00:00 CEST, in
	{"f3", "2026-10-25T00:30:00Z", "u4", "a", "doc", false},       // 02:30 CEST (first pass), in
	{"f4", "2026-10-25T01:30:00Z", "u5", "a", "doc", false},       // 02:30 CET (second pass), in
	{"f5", "2026-10-25T22:59:59.999999Z", "u5", "b", "doc", true}, // 23:59:59.999999 CET, in
	{"f6", "2026-10-25T23:00:00Z", "u5", "b", "doc", true},        // 26th 00:00 CET: out
}

func TestReportDSTDaysAndTimeZones(t *testing.T) {
	repo := postgres.NewRepository(newDB(t))
	insert(t, repo, dstEvents...)

	checkFigures(t, "Berlin 2026-03-29 (23 h)", report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-03-29", TimeZone: "Europe/Berlin"}), figures{
		Summary: audit.Summary{Total: 5, Successful: 4, Failed: 1, SuccessRate: 80, ActionBreakdown: []audit.ActionCount{
			{Action: "user.login", Count: 3}, {Action: "guild.update", Count: 1}, {Action: "system.backup", Count: 1}}},
		TopUsers:        []audit.UserCount{{UserID: "u1", Count: 2}, {UserID: "u2", Count: 2}}, // s6 has no user
		TopResources:    []audit.ResourceCount{{ResourceType: "user", Count: 3}, {ResourceType: "guild", Count: 1}, {ResourceType: "system", Count: 1}},
		FailureAnalysis: []audit.ActionFailures{{Action: "user.login", Failed: 1, Total: 3, FailureRate: 33.33}},
	})
	checkFigures(t, "UTC 2026-03-29", report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-03-29"}), figures{
		Summary: audit.Summary{Total: 6, Successful: 5, Failed: 1, SuccessRate: 83.33, ActionBreakdown: []audit.ActionCount{
			{Action: "user.login", Count: 2}, {Action: "user.logout", Count: 2}, {Action: "guild.update", Count: 1}, {Action: "system.backup", Count: 1}}},
		TopUsers:        []audit.UserCount{{UserID: "u2", Count: 2}, {UserID: "u3", Count: 2}, {UserID: "u1", Count: 1}},
		TopResources:    []audit.ResourceCount{{ResourceType: "user", Count: 4}, {ResourceType: "guild", Count: 1}, {ResourceType: "system", Count: 1}},
		FailureAnalysis: []audit.ActionFailures{{Action: "user.login", Failed: 1, Total: 2, FailureRate: 50}},
	})
	checkFigures(t, "Berlin 2026-10-25 (25 h)", report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-10-25", TimeZone: "Europe/Berlin"}), figures{
		Summary: audit.Summary{Total: 4, Successful: 2, Failed: 2, SuccessRate: 50, ActionBreakdown: []audit.ActionCount{
			{Action: "a", Count: 3}, {Action: "b", Count: 1}}},
		TopUsers:        []audit.UserCount{{UserID: "u4", Count: 2}, {UserID: "u5", Count: 2}},
		TopResources:    []audit.ResourceCount{{ResourceType: "doc", Count: 4}},
		FailureAnalysis: []audit.ActionFailures{{Action: "a", Failed: 2, Total: 3, FailureRate: 66.67}},
	})
	checkFigures(t, "Tokyo 2026-10-25: [2026-10-24T15:00Z, 2026-10-25T15:00Z)", report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-10-25", TimeZone: "Asia/Tokyo"}), figures{
		// f1..f4 (f1 is 06:59:59 on the 25th in Tokyo); f5 is already the 26th there.
		Summary: audit.Summary{Total: 4, Successful: 2, Failed: 2, SuccessRate: 50, ActionBreakdown: []audit.ActionCount{
			{Action: "a", Count: 4}}},
		TopUsers:        []audit.UserCount{{UserID: "u4", Count: 3}, {UserID: "u5", Count: 1}},
		TopResources:    []audit.ResourceCount{{ResourceType: "doc", Count: 4}},
		FailureAnalysis: []audit.ActionFailures{{Action: "a", Failed: 2, Total: 4, FailureRate: 50}},
	})
	checkFigures(t, "an empty day", report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-01-01", TimeZone: "Europe/Berlin"}), figures{})
	checkFigures(t, "custom: exactly the 02:00-03:00 CEST hour Berlin saw twice", report(t, repo, audit.ReportRequest{ReportType: "custom",
		StartDate: "2026-10-25T02:00:00+02:00", EndDate: "2026-10-25T02:00:00+01:00", TimeZone: "Europe/Berlin"}), figures{
		Summary: audit.Summary{Total: 1, Successful: 0, Failed: 1, SuccessRate: 0, ActionBreakdown: []audit.ActionCount{
			{Action: "a", Count: 1}}},
		TopUsers:        []audit.UserCount{{UserID: "u4", Count: 1}},
		TopResources:    []audit.ResourceCount{{ResourceType: "doc", Count: 1}},
		FailureAnalysis: []audit.ActionFailures{{Action: "a", Failed: 1, Total: 1, FailureRate: 100}},
	})
}

func TestReportWeekAcrossMonthEndAndSystemEvents(t *testing.T) {
	repo := postgres.NewRepository(newDB(t))
	insert(t, repo,
		ev{"w0", "2026-09-27T23:59:59.999999Z", "u1", "doc.read", "doc", true}, // Sunday of the week before: out
		ev{"w1", "2026-09-28T00:00:00Z", "u1", "doc.read", "doc", true},        // Monday 00:00: in
		ev{"w2", "2026-09-30T12:00:00Z", "", "cron.run", "job", true},          // system
		ev{"w3", "2026-10-01T00:00:00Z", "", "cron.run", "job", false},         // system, failed
		ev{"w4", "2026-10-04T23:59:59.999999Z", "u2", "doc.write", "doc", false},
		ev{"w5", "2026-10-05T00:00:00Z", "u2", "doc.write", "doc", true}, // next Monday: out
	)
	week := figures{
		Summary: audit.Summary{Total: 4, Successful: 2, Failed: 2, SuccessRate: 50, ActionBreakdown: []audit.ActionCount{
			{Action: "cron.run", Count: 2}, {Action: "doc.read", Count: 1}, {Action: "doc.write", Count: 1}}},
		TopUsers:     []audit.UserCount{{UserID: "u1", Count: 1}, {UserID: "u2", Count: 1}},
		TopResources: []audit.ResourceCount{{ResourceType: "doc", Count: 2}, {ResourceType: "job", Count: 2}},
		FailureAnalysis: []audit.ActionFailures{
			{Action: "doc.write", Failed: 1, Total: 1, FailureRate: 100}, {Action: "cron.run", Failed: 1, Total: 2, FailureRate: 50}},
	}
	for _, date := range []string{"2026-09-28", "2026-09-30", "2026-10-04"} {
		checkFigures(t, "week of "+date, report(t, repo, audit.ReportRequest{ReportType: "weekly", Date: date}), week)
	}
	checkFigures(t, "September", report(t, repo, audit.ReportRequest{ReportType: "monthly", Date: "2026-09-15"}), figures{
		Summary: audit.Summary{Total: 3, Successful: 3, Failed: 0, SuccessRate: 100, ActionBreakdown: []audit.ActionCount{
			{Action: "doc.read", Count: 2}, {Action: "cron.run", Count: 1}}},
		TopUsers:     []audit.UserCount{{UserID: "u1", Count: 2}},
		TopResources: []audit.ResourceCount{{ResourceType: "doc", Count: 2}, {ResourceType: "job", Count: 1}},
	})
	checkFigures(t, "only system events", report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-09-30"}), figures{
		Summary:      audit.Summary{Total: 1, Successful: 1, SuccessRate: 100, ActionBreakdown: []audit.ActionCount{{Action: "cron.run", Count: 1}}},
		TopResources: []audit.ResourceCount{{ResourceType: "job", Count: 1}},
	})
}

// Tops are cut at ten with ties broken by name in byte order, and every
// figure agrees with a count done in Go over the same rows.
func TestReportMatchesACountInGo(t *testing.T) {
	repo := postgres.NewRepository(newDB(t))
	rng := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var evs []ev
	for i := range 3000 {
		at := day.Add(time.Duration(rng.Int64N(int64(72 * time.Hour)))).Add(-24 * time.Hour) // the day before to the day after
		user := fmt.Sprintf("u%02d", rng.IntN(25))
		if rng.IntN(5) == 0 {
			user = ""
		}
		if rng.IntN(7) == 0 {
			user = "U" + user // upper case sorts first in byte order
		}
		evs = append(evs, ev{fmt.Sprintf("e%d", i), at.Format(time.RFC3339Nano), user,
			fmt.Sprintf("act.%d", rng.IntN(15)), fmt.Sprintf("res%d", rng.IntN(13)), rng.IntN(4) != 0})
	}
	insert(t, repo, evs...)

	var want audit.ReportCounts
	actions, users, resources := map[string]*audit.ActionTally{}, map[string]int64{}, map[string]int64{}
	for _, e := range evs {
		at, _ := time.Parse(time.RFC3339Nano, e.at)
		if at.Before(day) || !at.Before(day.Add(24*time.Hour)) {
			continue
		}
		a := actions[e.action]
		if a == nil {
			a = &audit.ActionTally{Action: e.action}
			actions[e.action] = a
		}
		a.Count++
		if !e.ok {
			a.Failed++
		}
		if e.user != "" {
			users[e.user]++
		}
		resources[e.resource]++
	}
	for _, a := range actions {
		want.Actions = append(want.Actions, *a)
	}
	for u, n := range users {
		want.TopUsers = append(want.TopUsers, audit.UserCount{UserID: u, Count: n})
	}
	for r, n := range resources {
		want.TopResources = append(want.TopResources, audit.ResourceCount{ResourceType: r, Count: n})
	}
	sort.Slice(want.TopUsers, func(i, j int) bool {
		a, b := want.TopUsers[i], want.TopUsers[j]
		return a.Count > b.Count || (a.Count == b.Count && a.UserID < b.UserID)
	})
	sort.Slice(want.TopResources, func(i, j int) bool {
		a, b := want.TopResources[i], want.TopResources[j]
		return a.Count > b.Count || (a.Count == b.Count && a.ResourceType < b.ResourceType)
	})
	want.TopUsers, want.TopResources = want.TopUsers[:10], want.TopResources[:10]

	got := report(t, repo, audit.ReportRequest{ReportType: "daily", Date: "2026-06-01"})
	exp := audit.BuildReport("daily", got.Period, want, got.GeneratedAt)
	checkFigures(t, "random day", got, figures{exp.Summary, exp.TopUsers, exp.TopActions, exp.TopResources, exp.FailureAnalysis})
	var sum int64
	for _, a := range got.Summary.ActionBreakdown {
		sum += a.Count
	}
	if s := got.Summary; s.Successful+s.Failed != s.Total || sum != s.Total || s.Total < 900 {
		t.Fatalf("figures do not add up: %+v (breakdown sum %d)", s, sum)
	}
}

func TestReportStore(t *testing.T) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(t))
	insert(t, repo, dstEvents...)
	req := audit.ReportRequest{ReportType: "daily", Date: "2026-03-29", TimeZone: "Europe/Berlin"}
	rep := report(t, repo, req)

	saved, err := repo.SaveReport(ctx, audit.StoredReport{Trigger: audit.TriggerRequest, Request: req, Report: rep}, "")
	if err != nil {
		t.Fatal(err)
	}
	if saved.ID < 1 {
		t.Fatalf("id %d", saved.ID)
	}
	got, err := repo.GetReport(ctx, saved.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(saved)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Fatalf("round trip:\n saved %s\n got   %s", a, b)
	}
	if _, err := repo.GetReport(ctx, saved.ID+100); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("GetReport(missing) = %v", err)
	}

	// Idempotent per job: the second save of job j1 returns the first.
	first, err := repo.SaveReport(ctx, audit.StoredReport{Trigger: audit.TriggerJob, Request: req, Report: rep}, "j1")
	if err != nil {
		t.Fatal(err)
	}
	rep2 := rep
	rep2.GeneratedAt = rep.GeneratedAt.Add(time.Hour)
	second, err := repo.SaveReport(ctx, audit.StoredReport{Trigger: audit.TriggerJob, Request: req, Report: rep2}, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || !second.GeneratedAt.Equal(first.GeneratedAt) {
		t.Fatalf("job saved twice: %d then %d", first.ID, second.ID)
	}
	if byJob, err := repo.ReportByJob(ctx, "j1"); err != nil || byJob.ID != first.ID {
		t.Fatalf("ReportByJob = %d, %v", byJob.ID, err)
	}
	if _, err := repo.ReportByJob(ctx, "j2"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("ReportByJob(missing) = %v", err)
	}

	// Newest first, keyset-paged, filtered by type.
	weekly := report(t, repo, audit.ReportRequest{ReportType: "weekly", Date: "2026-03-29"})
	w, err := repo.SaveReport(ctx, audit.StoredReport{Trigger: audit.TriggerRequest, Request: audit.ReportRequest{ReportType: "weekly", Date: "2026-03-29"}, Report: weekly}, "")
	if err != nil {
		t.Fatal(err)
	}
	all, err := repo.ListReports(ctx, "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].ID != w.ID || all[1].ID != first.ID || all[2].ID != saved.ID {
		t.Fatalf("list: %+v", all)
	}
	if all[2].Period.Start.Format(time.RFC3339) != "2026-03-29T00:00:00+01:00" || all[2].Trigger != "request" || all[1].Trigger != "job" {
		t.Fatalf("list item: %+v", all[2])
	}
	page, err := repo.ListReports(ctx, "", all[0].ID, 1)
	if err != nil || len(page) != 1 || page[0].ID != first.ID {
		t.Fatalf("second page: %+v %v", page, err)
	}
	daily, err := repo.ListReports(ctx, "daily", 0, 10)
	if err != nil || len(daily) != 2 {
		t.Fatalf("daily only: %+v %v", daily, err)
	}
}
