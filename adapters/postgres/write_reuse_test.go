package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// A failed write leaves its events to the caller at once: a caller that
// refills the same events (and their details' bytes) right after the
// error and writes them again races with nothing (run with -race) and
// gets every event stored. The writes are sealed and large enough to be
// hashed in the background; they fail before the COPY (a cancelled
// context), in the COPY (a refused row), and in the staging path that a
// stored id sends the write through, with and without encryption.
func TestWriteFailedThenEventsReused(t *testing.T) {
	const n = 5000
	cases := []struct {
		name    string
		encrypt bool
		cancel  bool
		stored  bool // the first event is stored already: the staging path
	}{
		{name: "cancelled context", cancel: true},
		{name: "refused row"},
		{name: "refused row in the staging path", stored: true},
		{name: "encrypted, refused row", encrypt: true},
		{name: "encrypted, refused row in the staging path", encrypt: true, stored: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			if _, err := db.ExecContext(ctx, `ALTER TABLE audit_logs ADD CONSTRAINT refused CHECK (action <> 'refused')`); err != nil {
				t.Fatal(err)
			}
			repo, _ := sealedRepo(t, db)
			if c.encrypt {
				repo = repo.WithPersonal(openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t)))
			}
			events := make([]audit.Event, n)
			refill(events, "a")
			if c.stored {
				if _, err := repo.Write(ctx, events[:1]); err != nil {
					t.Fatal(err)
				}
			}
			wctx := ctx
			if c.cancel {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				wctx = cctx
			} else {
				events[1].Action = "refused" // early: the write fails while hashing goes on
			}
			if _, err := repo.Write(wctx, events); err == nil {
				t.Fatal("the write succeeded")
			}
			refill(events, "b")
			res, err := repo.Write(ctx, events)
			if err != nil {
				t.Fatal(err)
			}
			if res != (audit.WriteResult{Inserted: n}) {
				t.Fatalf("second write: %+v", res)
			}
			var stored int
			if err := db.NewRaw(`SELECT count(*) FROM audit_logs WHERE id LIKE 'b%'`).Scan(ctx, &stored); err != nil {
				t.Fatal(err)
			}
			if stored != n {
				t.Fatalf("%d of %d events stored", stored, n)
			}
		})
	}
}

// refill overwrites events in place, as a caller reusing its buffers
// would: ids prefix0000.., and the bytes of details it already holds
// rewritten where they are.
func refill(events []audit.Event, prefix string) {
	for i := range events {
		details := events[i].Details
		text := fmt.Sprintf(`{"k": "%s%05d"}`, prefix, i)
		if len(details) == len(text) {
			copy(details, text)
		} else {
			details = json.RawMessage(text)
		}
		e := event(fmt.Sprintf("%s%05d", prefix, i))
		e.Details = details
		events[i] = e
	}
}
