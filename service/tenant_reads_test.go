package service_test

import (
	"testing"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// readRecord is an event recording a read, as a reader gets it.
type readRecord struct {
	ID      string `json:"id"`
	UserID  string `json:"userId"`
	Tenant  string `json:"tenant"`
	Details struct {
		Request   map[string]any `json:"request"`
		Requester struct {
			Verified        bool           `json:"verified"`
			Account         string         `json:"account"`
			User            string         `json:"user"`
			NatsRequestInfo map[string]any `json:"natsRequestInfo"`
		} `json:"requester"`
	} `json:"details"`
}

// readsOf asks rc for the recorded audit.query reads, by the userId each
// read asked for.
func readsOf(t *testing.T, rc *servicetest.RoleConn) map[string]readRecord {
	t.Helper()
	var p struct{ Events []readRecord }
	ask(t, rc.NC, contract.SubjectQuery, `{"action":"audit.query","limit":1000}`).into(t, &p)
	out := map[string]readRecord{}
	for _, e := range p.Events {
		if probe, ok := e.Details.Request["userId"].(string); ok {
			out[probe] = e
		}
	}
	return out
}

// TestTenantReadsAreRecordedInTheirTenant: a bound reader's read is
// recorded in its own tenant, where its tenant's reader sees it and the
// other tenant's does not; an operator's read of one tenant is recorded in
// that tenant (with the operator's verified identity, without the server's
// details of its connection), a read of every tenant in the default one.
func TestTenantReadsAreRecordedInTheirTenant(t *testing.T) {
	env := tenantsEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	acme := servicetest.ConnectAs(t, svc.NATSURL(), acmeReader)
	globex := servicetest.ConnectAs(t, svc.NATSURL(), globexReader)
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	ask(t, acme.NC, contract.SubjectQuery, `{"userId":"probe-acme"}`).ok(t)
	ask(t, globex.NC, contract.SubjectQuery, `{"userId":"probe-globex"}`).ok(t)
	ask(t, op.NC, contract.SubjectQuery, `{"userId":"probe-op-acme","tenant":"acme"}`).ok(t)
	ask(t, op.NC, contract.SubjectQuery, `{"userId":"probe-op-all"}`).ok(t)
	ask(t, op.NC, contract.SubjectQuery, `{"userId":"probe-op-default","tenant":""}`).ok(t)

	for probe, tenant := range map[string]string{"probe-acme": "acme", "probe-globex": "globex", "probe-op-acme": "acme", "probe-op-all": "", "probe-op-default": ""} {
		if n := servicetest.CountRows(t, db, "action = 'audit.query' AND details->'request'->>'userId' = ? AND tenant = ?", probe, tenant); n != 1 {
			t.Errorf("read %s: %d rows in tenant %q, want 1", probe, n, tenant)
		}
	}

	// Each tenant's reader sees the reads of its own trail only.
	for _, c := range []struct {
		rc   *servicetest.RoleConn
		want []string
	}{{acme, []string{"probe-acme", "probe-op-acme"}}, {globex, []string{"probe-globex"}}} {
		got := readsOf(t, c.rc)
		if len(got) != len(c.want) {
			t.Errorf("reads visible: %v, want %v", keys(got), c.want)
		}
		for _, probe := range c.want {
			if _, ok := got[probe]; !ok {
				t.Errorf("read %s not visible to its tenant (sees %v)", probe, keys(got))
			}
		}
	}
	own := readsOf(t, acme)["probe-acme"]
	if r := own.Details.Requester; own.Tenant != "acme" || r.Account != "acme" || r.User != acmeReader.User || r.NatsRequestInfo == nil {
		t.Errorf("acme's own read: %+v", own)
	}
	byOp := readsOf(t, acme)["probe-op-acme"]
	if r := byOp.Details.Requester; !r.Verified || r.Account != "OPERATORS" || r.User != tenantOperator.User || byOp.UserID != "nats:OPERATORS/operator" {
		t.Errorf("the operator's read of acme, as acme sees it: %+v", byOp)
	}
	if byOp.Details.Requester.NatsRequestInfo != nil {
		t.Errorf("acme sees the server's details of the operator's connection: %v", byOp.Details.Requester.NatsRequestInfo)
	}
	// The operator sees them all, the default tenant's reads with the
	// server's details.
	all := readsOf(t, op)
	for _, probe := range []string{"probe-acme", "probe-globex", "probe-op-acme", "probe-op-all"} {
		if _, ok := all[probe]; !ok {
			t.Errorf("the operator does not see read %s", probe)
		}
	}
	if all["probe-op-all"].Details.Requester.NatsRequestInfo == nil {
		t.Errorf("the operator's read of every tenant lacks natsRequestInfo: %+v", all["probe-op-all"])
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
