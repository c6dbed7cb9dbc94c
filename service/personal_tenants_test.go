package service_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// publishPersonal publishes, as r, an event of user with every personal
// field for each id.
func publishPersonal(t *testing.T, url string, r servicetest.Role, user string, ids ...string) {
	t.Helper()
	var msgs []*nats.Msg
	for _, id := range ids {
		msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, personalEvent(id, user)))
	}
	publishMsgsAs(t, url, r, msgs)
}

// One user id, "dana", in three tenants: the default tenant and acme
// encrypt (AUDITQ_PERSONAL_DATA), globex stores personal data as sent
// (AUDITQ_TENANT_PERSONAL_DATA). An operator erases dana in acme: the
// erasure is recorded in acme's trail with who asked; acme's reader sees
// dana's events erased, still found by user id and counted in the report
// under the pseudonym; the default tenant's dana and globex's read in
// clear; an erasure without a tenant, or in globex, is refused with the
// field or the tenant named; the trail verifies and counts the two
// erased events.
func TestErasureInOneTenant(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_PERSONAL_DATA"] = "encrypt"
	env["AUDITQ_TENANT_PERSONAL_DATA"] = "globex:off"
	env["AUDITQ_KEK_FILE"] = kekFile(t)
	env["AUDITQ_PERSONAL_DETAILS_KEYS"] = "email"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	url := svc.NATSURL()
	publishPersonal(t, url, acmePublisher, "dana", "a-1", "a-2")
	publishPersonal(t, url, globexPublisher, "dana", "g-1")
	publishPersonal(t, url, tenantOperator, "dana", "d-1")
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "resource_type = 'user'")
		return n == 4, fmt.Sprintf("%d rows", n)
	})
	if n := servicetest.CountRows(t, db, "id = 'g-1' AND user_id = 'dana' AND personal IS NULL AND ip_address IS NOT NULL"); n != 1 {
		t.Fatal("globex's event is not stored as sent")
	}
	if n := servicetest.CountRows(t, db, "id IN ('a-1', 'a-2', 'd-1') AND (personal IS NULL OR ip_address IS NOT NULL)"); n != 0 {
		t.Fatal("an event of acme or the default tenant is not encrypted")
	}

	op := servicetest.ConnectAs(t, url, tenantOperator).NC
	acme := servicetest.ConnectAs(t, url, acmeReader).NC
	globex := servicetest.ConnectAs(t, url, globexReader).NC
	before := search(t, acme, `{"userId":"dana"}`)
	if len(before) != 2 {
		t.Fatalf("acme's dana: %+v", before)
	}
	pseudonym := before[0].UserPseudonym
	if d := search(t, op, `{"userId":"dana","tenant":""}`); len(d) != 1 || d[0].UserPseudonym == pseudonym {
		t.Fatalf("the default tenant's dana has acme's pseudonym: %+v (acme: %s)", d, pseudonym)
	}

	if a := ask(t, op, contract.SubjectAdminErase, `{"userId":"dana"}`); a.code != "400" || !strings.Contains(a.error, "tenant: is required") {
		t.Fatalf("erase without a tenant: %s %s", a.code, a.error)
	}
	if a := ask(t, op, contract.SubjectAdminErase, `{"userId":"dana","tenant":"globex"}`); a.code != "501" || !strings.Contains(a.error, `"globex"`) {
		t.Fatalf("erase in globex (off): %s %s", a.code, a.error)
	}
	if a := ask(t, op, contract.SubjectAdminErase, `{"userId":"dana","tenant":"a.b"}`); a.code != "400" || !strings.Contains(a.error, "tenant: must be a tenant name") {
		t.Fatalf("erase in a malformed tenant: %s %s", a.code, a.error)
	}
	// A tenant's reader may not erase: the example grants it no such subject.
	if m, err := acme.Request(contract.SubjectAdminErase, []byte(`{"userId":"dana","tenant":"acme"}`), 2*time.Second); err == nil {
		t.Fatalf("acme's reader asked for an erasure: %s", m.Data)
	}
	res := ask(t, op, contract.SubjectAdminErase, `{"userId":"dana","tenant":"acme"}`).ok(t)
	var erased struct {
		EventID, Tenant, UserPseudonym string
		KeysDestroyed                  int
	}
	if err := json.Unmarshal(res.data, &erased); err != nil || erased.Tenant != "acme" || erased.UserPseudonym != pseudonym || erased.KeysDestroyed != 1 {
		t.Fatalf("erase dana in acme: %v %s", err, res.data)
	}

	// Recorded in acme's trail, naming who asked; not in another's.
	rec := search(t, acme, `{"action":"audit.subject.erase"}`)
	if len(rec) != 1 || rec[0].ID != erased.EventID || rec[0].ResourceID != pseudonym || !strings.Contains(string(rec[0].Details), `"OPERATORS"`) {
		t.Fatalf("acme's erasure events: %+v", rec)
	}
	if rec := search(t, globex, `{"action":"audit.subject.erase"}`); len(rec) != 0 {
		t.Fatalf("globex sees an erasure: %+v", rec)
	}
	after := search(t, acme, `{"userId":"dana"}`)
	if len(after) != 2 {
		t.Fatalf("acme's dana after the erasure: %+v", after)
	}
	for _, v := range after {
		checkErased(t, v, pseudonym)
	}
	if got := search(t, acme, fmt.Sprintf(`{"userPseudonym":%q}`, pseudonym)); len(got) != 2 {
		t.Fatalf("acme's dana by pseudonym: %+v", got)
	}
	d := search(t, op, `{"userId":"dana","tenant":""}`)
	if len(d) != 1 {
		t.Fatalf("the default tenant's dana: %+v", d)
	}
	checkRevealed(t, d[0], "dana")
	g := search(t, globex, `{"userId":"dana"}`)
	if len(g) != 1 || g[0].Erased || g[0].UserID == nil || *g[0].UserID != "dana" || g[0].IPAddress != "198.51.100.7" || g[0].UserPseudonym != "" {
		t.Fatalf("globex's dana: %+v", g)
	}
	if all := search(t, op, `{"userId":"dana"}`); len(all) != 4 {
		t.Fatalf("dana in every tenant: %+v", all)
	}

	// acme's report counts dana's events under the erased pseudonym.
	var report struct {
		TopUsers []struct {
			UserID, UserPseudonym string
			Erased                bool
			Count                 int
		}
	}
	if err := json.Unmarshal(ask(t, acme, contract.SubjectReport, `{"reportType":"daily","date":"2026-11-24"}`).ok(t).data, &report); err != nil {
		t.Fatal(err)
	}
	if len(report.TopUsers) != 1 || !report.TopUsers[0].Erased || report.TopUsers[0].UserPseudonym != pseudonym || report.TopUsers[0].Count != 2 {
		t.Fatalf("acme's top users: %+v", report.TopUsers)
	}

	if out, err := runVerify(t, env); err != nil || !strings.Contains(out, "2 events erased") || !strings.Contains(out, "OK: no tampering found") {
		t.Fatalf("verify after the erasure: %v\n%s", err, out)
	}
}
