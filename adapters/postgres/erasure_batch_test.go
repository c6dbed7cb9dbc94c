package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// One replacement of the key-encryption key serves every pending erasure
// whose erasure event is in the trail: destroying the keys of one
// completes the others too (each with its own count of keys), under one
// new key generation; a pending erasure whose event is not recorded yet
// keeps its keys until its own turn; asking again for a completed one
// destroys nothing and replaces no key.
func TestPersonalDestroyKeysServesEveryRecordedErasure(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	p := openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t))
	repo := postgres.NewRepository(db).WithPersonal(p)
	users := []string{"ann", "ben", "cid", "dee"}
	var evs []audit.Event
	for i, u := range users {
		evs = append(evs, personalEvent(fmt.Sprintf("b%d", i), u))
	}
	if _, err := repo.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	generation := func() int64 {
		g, err := p.KeyGeneration(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g0 := generation()
	pending := map[string]audit.Erasure{}
	var recorded []audit.Event
	for i, u := range users[:3] {
		e, err := beginErasure(ctx, p, audit.Erasure{EventID: fmt.Sprintf("erase-%d", i), Pseudonym: p.Pseudonym(u), RequestedAt: event("x").OccurredAt})
		if err != nil {
			t.Fatal(err)
		}
		pending[u] = e
		if u != "cid" { // cid's erasure event is not written yet
			recorded = append(recorded, audit.Event{ID: e.EventID, Action: audit.ActionErase, ResourceType: audit.ErasureResourceType,
				ResourceID: e.Pseudonym, Success: true, OccurredAt: e.RequestedAt, ReceivedAt: e.RequestedAt})
		}
	}
	if _, err := repo.Write(ctx, recorded); err != nil {
		t.Fatal(err)
	}
	done, err := p.DestroyKeys(ctx, pending["ann"])
	if err != nil || !done.Completed || done.KeysErased != 1 {
		t.Fatalf("destroy ann: %v %+v", err, done)
	}
	if g := generation(); g != g0+1 {
		t.Fatalf("key generation %d after one destruction, want %d", g, g0+1)
	}
	left, err := p.PendingErasures(ctx)
	if err != nil || len(left) != 1 || left[0].Pseudonym != p.Pseudonym("cid") {
		t.Fatalf("pending after ann's destruction: %v %+v, want cid's only", err, left)
	}
	for i, u := range users {
		got, err := repo.Get(ctx, "", fmt.Sprintf("b%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := u == "ann" || u == "ben"; got.Erased != want {
			t.Fatalf("event of %s erased %v, want %v", u, got.Erased, want)
		}
	}
	// ben's was completed by ann's: asking again destroys nothing more and
	// keeps the key generation.
	if again, err := p.DestroyKeys(ctx, pending["ben"]); err != nil || !again.Completed || again.KeysErased != 1 {
		t.Fatalf("destroy ben after ann: %v %+v", err, again)
	}
	if g := generation(); g != g0+1 {
		t.Fatalf("key generation %d after a completed erasure was asked again, want %d", g, g0+1)
	}
	if e, err := p.DestroyKeys(ctx, pending["cid"]); err != nil || e.KeysErased != 1 || generation() != g0+2 {
		t.Fatalf("destroy cid: %v %+v, generation %d", err, e, generation())
	}
	if got, err := repo.Get(ctx, "", "b3"); err != nil || got.Erased || got.UserID != "dee" {
		t.Fatalf("dee's event: %v %+v", err, got)
	}
}

// BeginErasures records a list of erasures in one transaction: each
// subject its own pending erasure with who asked, answered in the order
// asked; a subject already pending answers with the erasure pending
// before; a list one of whose rows the database refuses records none;
// two requests over the same subjects in opposite orders, at once,
// neither deadlock nor record a subject twice, and both answer with the
// same pending erasure for each subject.
func TestPersonalBeginErasuresRecordsAListAtOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	p := openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t))
	at := event("x").OccurredAt
	erasure := func(id, user, by string) audit.Erasure {
		e := audit.Erasure{EventID: id, Pseudonym: p.Pseudonym(user), RequestedAt: at}
		if by != "" {
			e.RequestedBy = []byte(by)
		}
		return e
	}
	before, err := beginErasure(ctx, p, erasure("erase-b", "bea", `{"who":"first"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.BeginErasures(ctx, []audit.Erasure{
		erasure("erase-z", "zed", `{"who":"dpo"}`), erasure("erase-b2", "bea", `{"who":"dpo"}`), erasure("erase-a", "abe", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ id, user, by string }{{"erase-z", "zed", `{"who": "dpo"}`}, {"erase-b", "bea", `{"who": "first"}`}, {"erase-a", "abe", ""}} {
		if len(got) != 3 || got[i].EventID != want.id || got[i].Pseudonym != p.Pseudonym(want.user) || string(got[i].RequestedBy) != want.by ||
			got[i].Completed || !got[i].RequestedAt.Equal(at) {
			t.Fatalf("erasure %d: %+v, want %+v (before: %+v)", i, got, want, before)
		}
	}
	pending, err := p.PendingErasures(ctx)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending after the list: %v %+v, want bea's, zed's and abe's", err, pending)
	}

	if _, err := p.BeginErasures(ctx, []audit.Erasure{erasure("erase-c", "cal", ""), erasure("erase-d", "dot", `{"who":`)}); err == nil {
		t.Fatal("a list with a requester that is not JSON was recorded")
	}
	if again, err := p.PendingErasures(ctx); err != nil || len(again) != 3 {
		t.Fatalf("a refused list left %d pending erasures (%v), want the 3 before", len(again), err)
	}

	for round := range 10 {
		users := make([]string, 20)
		for i := range users {
			users[i] = fmt.Sprintf("r%d-u%d", round, i)
		}
		results := make([][]audit.Erasure, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for k := range 2 {
			wg.Go(func() {
				list := make([]audit.Erasure, len(users))
				for i, u := range users {
					if k == 1 {
						u = users[len(users)-1-i]
					}
					list[i] = erasure(fmt.Sprintf("erase-%d-%d-%s", round, k, u), u, "")
				}
				results[k], errs[k] = p.BeginErasures(ctx, list)
			})
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v / %v", round, errs[0], errs[1])
		}
		for i := range users {
			a, b := results[0][i], results[1][len(users)-1-i]
			if a.EventID != b.EventID || a.Pseudonym != p.Pseudonym(users[i]) {
				t.Fatalf("round %d, %s: erasure %s and %s", round, users[i], a.EventID, b.EventID)
			}
		}
	}
	if pending, err := p.PendingErasures(ctx); err != nil || len(pending) != 3+10*20 {
		t.Fatalf("%d pending erasures (%v), want %d: one per subject", len(pending), err, 3+10*20)
	}
}
