package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

func eventIDs(events []audit.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func TestSearchFilters(t *testing.T) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(t))
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	mk := func(id string, minute int, mod func(*audit.Event)) audit.Event {
		at := base.Add(time.Duration(minute) * time.Minute)
		e := audit.Event{ID: id, UserID: "u1", Action: "guild.update", ResourceType: "guild", ResourceID: "g1",
			Success: true, OccurredAt: at, ReceivedAt: at}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	events := []audit.Event{
		mk("a", 0, nil),
		mk("b", 1, func(e *audit.Event) { e.Action = "guild.member.add"; e.UserID = "u2" }),
		mk("c", 2, func(e *audit.Event) { e.Action = "guildXupdate" }),
		mk("d", 3, func(e *audit.Event) { e.Action = "a_b.x"; e.UserID = "" }),
		mk("e", 4, func(e *audit.Event) { e.Action = "aXb.x"; e.Success = false }),
		mk("f", 5, func(e *audit.Event) { e.Action = "100%.done"; e.SessionID = "s1" }),
		mk("g", 6, func(e *audit.Event) { e.Action = `back\slash`; e.RequestID = "r1" }),
		mk("h", 7, func(e *audit.Event) { e.Action = "backXslash"; e.ResourceType = "user"; e.ResourceID = "42" }),
		mk("i", 7, func(e *audit.Event) { e.ResourceID = "g2" }), // same instant as h: id breaks the tie
	}
	if _, err := repo.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	f := func(mod func(*audit.SearchFilter)) audit.SearchFilter {
		sf := audit.SearchFilter{Limit: 100}
		mod(&sf)
		return sf
	}
	no := false
	cases := []struct {
		name   string
		filter audit.SearchFilter
		want   []string
	}{
		{"everything, newest first, ties by id descending", f(func(*audit.SearchFilter) {}), []string{"i", "h", "g", "f", "e", "d", "c", "b", "a"}},
		{"user", f(func(s *audit.SearchFilter) { s.UserID = "u2" }), []string{"b"}},
		{"exact action", f(func(s *audit.SearchFilter) { s.Action = "guild.update" }), []string{"i", "a"}},
		{"action prefix guild.*", f(func(s *audit.SearchFilter) { s.Action, s.ActionPrefix = audit.ParseActionPattern("guild.*") }), []string{"i", "b", "a"}},
		{"underscore is literal", f(func(s *audit.SearchFilter) { s.Action, s.ActionPrefix = audit.ParseActionPattern("a_b*") }), []string{"d"}},
		{"percent is literal", f(func(s *audit.SearchFilter) { s.Action, s.ActionPrefix = audit.ParseActionPattern("100%*") }), []string{"f"}},
		{"backslash is literal", f(func(s *audit.SearchFilter) { s.Action, s.ActionPrefix = audit.ParseActionPattern(`back\*`) }), []string{"g"}},
		{"a lone * matches all", f(func(s *audit.SearchFilter) { s.Action, s.ActionPrefix = audit.ParseActionPattern("*"); s.Limit = 2 }), []string{"i", "h"}},
		{"resource", f(func(s *audit.SearchFilter) { s.ResourceType, s.ResourceID = "user", "42" }), []string{"h"}},
		{"resource type only", f(func(s *audit.SearchFilter) { s.ResourceType = "guild"; s.UserID = "u1" }), []string{"i", "g", "f", "e", "c", "a"}},
		{"failures", f(func(s *audit.SearchFilter) { s.Success = &no }), []string{"e"}},
		{"session", f(func(s *audit.SearchFilter) { s.SessionID = "s1" }), []string{"f"}},
		{"request", f(func(s *audit.SearchFilter) { s.RequestID = "r1" }), []string{"g"}},
		{"from inclusive, to exclusive", f(func(s *audit.SearchFilter) {
			s.From, s.To = base.Add(2*time.Minute), base.Add(5*time.Minute)
		}), []string{"e", "d", "c"}},
		{"after a position", f(func(s *audit.SearchFilter) {
			s.After = &audit.Position{OccurredAt: base.Add(7 * time.Minute), ID: "i"}
			s.Limit = 3
		}), []string{"h", "g", "f"}},
		{"no match", f(func(s *audit.SearchFilter) { s.UserID = "nobody" }), []string{}},
	}
	for _, c := range cases {
		got, err := repo.Search(ctx, c.filter)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(eventIDs(got), c.want) {
			t.Errorf("%s: got %v, want %v", c.name, eventIDs(got), c.want)
		}
	}
	got, _ := repo.Search(ctx, f(func(s *audit.SearchFilter) { s.UserID = "u2" }))
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(events[1]) {
		t.Fatalf("round trip: %+v", got)
	}
}

// inSearchOrder reports whether b comes after a in search order: newest
// first, events of one instant by descending id.
func inSearchOrder(a, b audit.Event) bool {
	return b.OccurredAt.Before(a.OccurredAt) || b.OccurredAt.Equal(a.OccurredAt) && b.ID < a.ID
}

// Keyset pages neither skip nor repeat a stored event while events keep
// arriving between pages: newer ones (which belong before page one) and
// late ones with old timestamps (which show up further on, once).
func TestSearchPagesAreStableAcrossInserts(t *testing.T) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(t))
	base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	var initial []audit.Event
	for i := range 250 {
		at := base.Add(time.Duration(i/3) * time.Second) // three events per instant: ties
		initial = append(initial, audit.Event{ID: fmt.Sprintf("e%03d", i), Action: "a", ResourceType: "t", ResourceID: "r",
			Success: true, OccurredAt: at, ReceivedAt: at})
	}
	if _, err := repo.Write(ctx, initial); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var after *audit.Position
	var prev *audit.Event
	for page := 0; ; page++ {
		got, err := repo.Search(ctx, audit.SearchFilter{Limit: 40, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			e := got[i]
			seen[e.ID]++
			if prev != nil && !inSearchOrder(*prev, e) {
				t.Fatalf("page %d: %s (%s) does not come after %s (%s)", page, e.ID, e.OccurredAt, prev.ID, prev.OccurredAt)
			}
			prev = &got[i]
		}
		if len(got) < 40 {
			break
		}
		last := got[len(got)-1]
		after = &audit.Position{OccurredAt: last.OccurredAt, ID: last.ID}
		// Between pages: a new event, one at the cursor's own instant with
		// an id above the cursor (already passed: must not appear), and a
		// late one far back (not yet passed: must appear once).
		at := last.OccurredAt
		late := base.Add(-time.Duration(page+1) * time.Minute)
		more := []audit.Event{
			{ID: fmt.Sprintf("new%d", page), Action: "a", ResourceType: "t", ResourceID: "r", OccurredAt: base.Add(time.Hour), ReceivedAt: base},
			{ID: last.ID + "z", Action: "a", ResourceType: "t", ResourceID: "r", OccurredAt: at, ReceivedAt: at},
			{ID: fmt.Sprintf("late%d", page), Action: "a", ResourceType: "t", ResourceID: "r", OccurredAt: late, ReceivedAt: late},
		}
		if _, err := repo.Write(ctx, more); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range initial {
		if seen[e.ID] != 1 {
			t.Errorf("%s seen %d times", e.ID, seen[e.ID])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", id, n)
		}
		if id[0] == 'n' || id[len(id)-1] == 'z' {
			t.Errorf("%s was inserted before the cursor's position yet appeared", id)
		}
	}
	if lates := len(seen) - len(initial); lates < 5 {
		t.Errorf("only %d late events appeared", lates)
	}
}
