package ports

import (
	"errors"
	"testing"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// TestBindFailsClosed: with tenants on, a reader is bound to the tenant of
// its verified account unless the account is unbound or auditq's own; an
// unverified caller, an account that is no tenant name, and a bound reader
// asking beyond its tenant are refused naming "tenant".
func TestBindFailsClosed(t *testing.T) {
	on := TenantPolicy{Enabled: true, Unbound: []string{"OPERATORS"}}
	verified := func(acc string) *query.Identity { return &query.Identity{Account: acc, User: "u"} }
	cases := []struct {
		name    string
		policy  TenantPolicy
		who     *query.Identity
		subject string
		scope   audit.TenantScope
		refused bool
	}{
		{"tenants off", TenantPolicy{}, nil, contract.SubjectQuery, audit.TenantScope{}, false},
		{"unverified", on, nil, contract.SubjectQuery, audit.TenantScope{}, true},
		{"auditq's own account", on, verified("AUDITQ"), contract.SubjectAdminStatus, audit.TenantScope{}, false},
		{"unbound account", on, verified("OPERATORS"), contract.SubjectAdminStatus, audit.TenantScope{}, false},
		{"tenant account", on, verified("acme"), contract.SubjectQuery, audit.TenantScope{Bound: true, Tenant: "acme"}, false},
		{"tenant on export", on, verified("acme"), contract.SubjectExport, audit.TenantScope{Bound: true, Tenant: "acme"}, false},
		{"tenant on an operation", on, verified("acme"), contract.SubjectAdminStatus, audit.TenantScope{Bound: true, Tenant: "acme"}, true},
		{"tenant erasing", on, verified("acme"), contract.SubjectAdminErase, audit.TenantScope{Bound: true, Tenant: "acme"}, true},
		{"tenant writing a checkpoint", on, verified("acme"), contract.SubjectCheckpointWrite, audit.TenantScope{Bound: true, Tenant: "acme"}, true},
		{"account no tenant name", on, verified("a.b"), contract.SubjectQuery, audit.TenantScope{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Requests{cfg: RequestsConfig{Tenants: c.policy, Identity: Identity{Trusted: true, Account: "AUDITQ"}}}
			who := query.Requester{Verified: c.who}
			err := r.bind(&who, c.subject)
			var f *audit.ForbiddenError
			if c.refused != (err != nil) || err != nil && (!errors.As(err, &f) || f.Field != "tenant") {
				t.Fatalf("bind: %v, want refused %v naming tenant", err, c.refused)
			}
			if !c.refused && who.Scope != c.scope {
				t.Fatalf("scope %+v, want %+v", who.Scope, c.scope)
			}
		})
	}
}

func TestTenantOfSubjects(t *testing.T) {
	for _, c := range []struct {
		subject, job, tenant string
		ok                   bool
	}{
		{"audit.log", "audit.log", "", true},
		{"audit.bulk", "audit.bulk", "", true},
		{"audit.t.acme.log", "audit.log", "acme", true},
		{"audit.t.acme.bulk", "audit.bulk", "acme", true},
		{"audit.t.acme.results.bulk", "", "", false},
		{"audit.t..log", "", "", false},
		{"audit.cleanup", "", "", false},
	} {
		job, tenant, ok := contract.TenantOf(c.subject)
		if job != c.job || tenant != c.tenant || ok != c.ok {
			t.Errorf("TenantOf(%q) = %q, %q, %v; want %q, %q, %v", c.subject, job, tenant, ok, c.job, c.tenant, c.ok)
		}
	}
}
