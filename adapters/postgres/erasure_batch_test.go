package postgres_test

import (
	"context"
	"fmt"
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
		e, err := p.BeginErasure(ctx, audit.Erasure{EventID: fmt.Sprintf("erase-%d", i), Pseudonym: p.Pseudonym(u), RequestedAt: event("x").OccurredAt})
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
