package audit

import (
	"errors"
	"testing"
)

// A lookup by id reads one tenant: a bound caller's own (naming another
// is forbidden), an unbound caller's named one, else the default tenant.
func TestTenantScopeResolveOne(t *testing.T) {
	s := func(v string) *string { return &v }
	bound := TenantScope{Bound: true, Tenant: "acme"}
	for _, c := range []struct {
		name      string
		scope     TenantScope
		requested *string
		want      string
		forbidden bool
		invalid   bool
	}{
		{"unbound, not said", TenantScope{}, nil, DefaultTenant, false, false},
		{"unbound, one", TenantScope{}, s("globex"), "globex", false, false},
		{"unbound, the default", TenantScope{}, s(""), DefaultTenant, false, false},
		{"unbound, malformed", TenantScope{}, s("a.b"), "", false, true},
		{"bound, not said", bound, nil, "acme", false, false},
		{"bound, its own", bound, s("acme"), "acme", false, false},
		{"bound, another", bound, s("globex"), "", true, false},
		{"bound, the default", bound, s(""), "", true, false},
	} {
		got, err := c.scope.ResolveOne("tenant", c.requested)
		var fe *ForbiddenError
		var ve *ValidationError
		switch {
		case c.forbidden:
			if !errors.As(err, &fe) || fe.Field != "tenant" {
				t.Errorf("%s: %q, %v; want forbidden", c.name, got, err)
			}
		case c.invalid:
			if !errors.As(err, &ve) || ve.Field != "tenant" {
				t.Errorf("%s: %q, %v; want invalid", c.name, got, err)
			}
		case err != nil || got != c.want:
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestEventKeyAndRef(t *testing.T) {
	for _, c := range []struct{ tenant, id, key, ref string }{
		{"", "evt-1", "evt-1", `"evt-1"`},
		{"acme", "evt-1", "acme/evt-1", `"evt-1" of tenant "acme"`},
	} {
		if k, r := EventKey(c.tenant, c.id), EventRef(c.tenant, c.id); k != c.key || r != c.ref {
			t.Errorf("(%q, %q): key %q, ref %s", c.tenant, c.id, k, r)
		}
	}
}
