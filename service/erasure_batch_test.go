package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// Several users erased in one request (auditq erase --user a --user b,
// audit.admin.erase with userIds) share one replacement of the
// key-encryption key, and each still gets its own erasure event naming
// who asked; the answer lists them in the order asked. A bad or held user
// refuses the whole list before anything is recorded. Concurrent
// requests all complete, with at most one replacement each.
func TestErasureOfSeveralUsersSharesOneKeyReplacement(t *testing.T) {
	env := personalEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	schemas := schemasServed(t, nc)
	ctx := context.Background()
	cenv := clientEnv(env, svc)

	var msgs []*nats.Msg
	pseudonyms := map[string]string{}
	for i := range 10 {
		id, user := fmt.Sprintf("m%d", i), fmt.Sprintf("user%d", i)
		msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, personalEvent(id, user)))
	}
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "resource_type = 'user'")
		return n == 10, fmt.Sprintf("%d rows", n)
	})
	for i := range 10 {
		user := fmt.Sprintf("user%d", i)
		got := search(t, nc, fmt.Sprintf(`{"userId":%q}`, user))
		if len(got) != 1 {
			t.Fatalf("search %s: %d events", user, len(got))
		}
		pseudonyms[user] = got[0].UserPseudonym
	}
	generation := func() int {
		var g int
		if err := db.QueryRowContext(ctx, `SELECT generation FROM audit_kek_state WHERE id = 1`).Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	erasures := func(where string) int {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_erasures `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	g0 := generation()

	// Refused lists: nothing recorded.
	for body, want := range map[string]string{
		`{"userIds":["user8","user8"]}`:          "userIds[1]",
		`{"userIds":["user8","held-user"]}`:      "legal hold",
		`{"userId":"user8","userIds":["user9"]}`: "userId",
		`{"userIds":[]}`:                         "userIds",
		`{"userIds":["user8",""]}`:               "userIds[1]",
		`{"userIds":["user8","bad\u0000user"]}`:  "userIds[1]",
	} {
		if a := ask(t, nc, contract.SubjectAdminErase, body); a.code == "" || !strings.Contains(a.error, want) {
			t.Fatalf("erase %s: %s %s, want an error naming %s", body, a.code, a.error, want)
		}
	}
	if n := erasures(""); n != 0 || generation() != g0 {
		t.Fatalf("refused requests recorded %d erasures, key generation %d -> %d", n, g0, generation())
	}

	out, err := servicetest.Client(ctx, t, cenv, "erase", "--user", "user0", "--user", "user1")
	if err != nil {
		t.Fatalf("auditq erase: %v\n%s", err, out)
	}
	for _, u := range []string{"user0", "user1"} {
		if !strings.Contains(out, "erased: pseudonym "+pseudonyms[u]+", 1 subject keys destroyed") {
			t.Fatalf("auditq erase output lacks %s:\n%s", u, out)
		}
	}
	if g := generation(); g != g0+1 {
		t.Fatalf("key generation %d after erasing two users in one request, want %d", g, g0+1)
	}

	a := ask(t, nc, contract.SubjectAdminErase, `{"userIds":["user4","user2","user3"]}`, "Auditq-Requester", "dpo:ticket-7").ok(t)
	if err := schemaErr(t, schemas["erase"], a.data); err != nil {
		t.Fatalf("erase reply %s: %v", a.data, err)
	}
	var list struct {
		Erasures []struct {
			EventID, UserPseudonym string
			KeysDestroyed          int
		}
	}
	if err := json.Unmarshal(a.data, &list); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, u := range []string{"user4", "user2", "user3"} {
		if len(list.Erasures) != 3 || list.Erasures[i].UserPseudonym != pseudonyms[u] || list.Erasures[i].KeysDestroyed != 1 {
			t.Fatalf("erasure %d of %s: %s", i, u, a.data)
		}
		ids[list.Erasures[i].EventID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("the erasures share event ids: %s", a.data)
	}
	if g := generation(); g != g0+2 {
		t.Fatalf("key generation %d after erasing three users in one request, want %d", g, g0+2)
	}

	// Four requests at once: each completes; together at most four
	// replacements (fewer when one waited for another's).
	var wg sync.WaitGroup
	errs := make([]string, 4)
	for i := range 4 {
		wg.Go(func() {
			m := nats.NewMsg(contract.SubjectAdminErase)
			m.Data = fmt.Appendf(nil, `{"userId":"user%d"}`, 5+i)
			m.Header.Set("Auditq-Requester", "dpo:ticket-8")
			reply, err := nc.RequestMsg(m, time.Minute)
			if err != nil {
				errs[i] = err.Error()
			} else if c := reply.Header.Get("Nats-Service-Error"); c != "" {
				errs[i] = c
			}
		})
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Fatalf("concurrent erasure of user%d: %s", 5+i, e)
		}
	}
	if g := generation(); g <= g0+2 || g > g0+6 {
		t.Fatalf("key generation %d after four concurrent erasures, want %d to %d", g, g0+3, g0+6)
	}

	// Each erased user's event reads erased, the others' not; one erasure
	// event per user, naming who asked.
	for i := range 10 {
		user := fmt.Sprintf("user%d", i)
		got := search(t, nc, fmt.Sprintf(`{"userPseudonym":%q}`, pseudonyms[user]))
		if len(got) != 1 {
			t.Fatalf("search %s: %d events", user, len(got))
		}
		if i <= 8 {
			checkErased(t, got[0], pseudonyms[user])
		} else {
			checkRevealed(t, got[0], user)
		}
		if n := servicetest.CountRows(t, db, "action = 'audit.subject.erase' AND resource_id = ? AND jsonb_exists(details, 'requestedBy')", pseudonyms[user]); n != map[bool]int{true: 1, false: 0}[i <= 8] {
			t.Fatalf("%d erasure events of %s", n, user)
		}
	}
	if n := erasures("WHERE completed_at IS NULL"); n != 0 {
		t.Fatalf("%d erasures left pending", n)
	}
}
