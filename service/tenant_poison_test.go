package service_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// poisonListed is one message of an audit.admin.poison.list answer.
type poisonListed struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	EventID string `json:"eventId"`
	Reason  string `json:"reason"`
	Target  string `json:"target"`
}

// TestTenantsRejectedMessagesOfOneMsgIDAreBothPoisoned: acme and globex
// each publish an invalid event under the same Nats-Msg-Id, the second
// after AUDIT's duplicate window (so both are stored there) and well
// inside AUDIT_POISON's; both land in the poison stream, each to be
// replayed to its own tenant's subject, and replayed corrected, each is
// stored under its tenant.
func TestTenantsRejectedMessagesOfOneMsgIDAreBothPoisoned(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_NATS_CONFIG"] = tenantsConfig
	env["AUDITQ_DUPLICATE_WINDOW"] = "1s"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	list := func() []poisonListed {
		var out struct{ Messages []poisonListed }
		ask(t, op.NC, contract.SubjectAdminPoisonList, `{"job":"log"}`).into(t, &out)
		return out.Messages
	}
	for i, tenant := range []string{"acme", "globex"} {
		if i > 0 {
			time.Sleep(1500 * time.Millisecond) // past AUDIT's window
		}
		r := map[string]servicetest.Role{"acme": acmePublisher, "globex": globexPublisher}[tenant]
		js, err := jetstream.New(servicetest.ConnectAs(t, svc.NATSURL(), r).NC)
		if err != nil {
			t.Fatal(err)
		}
		ack := servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, "same-msg-id", incomplete("bad-1"))})[0]
		if ack.Duplicate {
			t.Fatalf("%s's publish taken for a duplicate in AUDIT: is its window still 1s?", tenant)
		}
		servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
			n := len(list())
			return n == i+1, fmt.Sprintf("AUDIT_POISON holds %d log messages, want %d", n, i+1)
		})
	}
	msgs := list()
	targets := map[string]uint64{}
	for _, m := range msgs {
		if m.ID != "same-msg-id" || m.EventID != "bad-1" || !strings.HasPrefix(m.Reason, "resourceType: ") {
			t.Errorf("poison message %+v", m)
		}
		targets[m.Target] = m.Seq
	}
	want := []string{contract.TenantSubject("acme", "log"), contract.TenantSubject("globex", "log")}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range targets {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, want) {
		t.Fatalf("poison messages to replay to %v, want one to each of %v", got, want)
	}

	// Replayed corrected, each goes to its tenant's subject under its own
	// Nats-Msg-Id, and is stored there under the id it had.
	for _, tenant := range []string{"acme", "globex"} {
		subject := contract.TenantSubject(tenant, "log")
		payload, _ := json.Marshal(servicetest.EventJSON("bad-1", "fixed."+tenant))
		var rep struct {
			Subject   string `json:"subject"`
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		ask(t, op.NC, contract.SubjectAdminPoisonReplay, fmt.Sprintf(`{"seq":%d,"payload":%s}`, targets[subject], payload)).into(t, &rep)
		if rep.Subject != subject || rep.ID != "same-msg-id" || rep.Duplicate {
			t.Errorf("%s's replay: %+v", tenant, rep)
		}
	}
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		a := servicetest.CountRows(t, db, "id = 'bad-1' AND tenant = 'acme' AND action = 'fixed.acme'")
		g := servicetest.CountRows(t, db, "id = 'bad-1' AND tenant = 'globex' AND action = 'fixed.globex'")
		return a == 1 && g == 1, fmt.Sprintf("replayed events stored: acme %d, globex %d", a, g)
	})
	if n := servicetest.CountRows(t, db, "id = 'bad-1'"); n != 2 {
		t.Errorf("bad-1 stored %d times, want once per tenant", n)
	}
	if left := list(); len(left) != 0 {
		t.Errorf("AUDIT_POISON still holds %+v", left)
	}
}
