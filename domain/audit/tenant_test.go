package audit

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTenant(t *testing.T) {
	for _, ok := range []string{"acme", "A-b_9", strings.Repeat("x", MaxTenantLen)} {
		if err := CheckTenant("tenant", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b", "é", strings.Repeat("x", MaxTenantLen+1)} {
		var v *ValidationError
		if err := CheckTenant("tenant", bad); !errors.As(err, &v) || v.Field != "tenant" {
			t.Errorf("%q: %v, want a validation error naming tenant", bad, err)
		}
	}
}

func TestTenantScopeResolve(t *testing.T) {
	s := func(v string) *string { return &v }
	bound := TenantScope{Bound: true, Tenant: "acme"}
	cases := []struct {
		name      string
		scope     TenantScope
		requested *string
		want      *string
		forbidden bool
		invalid   bool
	}{
		{"unbound, all", TenantScope{}, nil, nil, false, false},
		{"unbound, one", TenantScope{}, s("globex"), s("globex"), false, false},
		{"unbound, default", TenantScope{}, s(""), s(""), false, false},
		{"unbound, malformed", TenantScope{}, s("a.b"), nil, false, true},
		{"bound, unsaid", bound, nil, s("acme"), false, false},
		{"bound, own", bound, s("acme"), s("acme"), false, false},
		{"bound, other", bound, s("globex"), nil, true, false},
		{"bound, default", bound, s(""), nil, true, false},
		{"bound, malformed", bound, s("a.b"), nil, false, true},
	}
	for _, c := range cases {
		got, err := c.scope.Resolve("tenant", c.requested)
		var f *ForbiddenError
		var v *ValidationError
		switch {
		case c.forbidden != errors.As(err, &f), c.invalid != errors.As(err, &v):
			t.Errorf("%s: %v", c.name, err)
		case (got == nil) != (c.want == nil), got != nil && *got != *c.want:
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if !bound.AllowsReport(s("acme")) || bound.AllowsReport(s("globex")) || bound.AllowsReport(nil) || !(TenantScope{}).AllowsReport(nil) {
		t.Error("AllowsReport")
	}
}
