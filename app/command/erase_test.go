package command_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// A legal hold refuses the erasure it reaches, naming the setting: a hold
// in every tenant refuses it in any tenant, a hold in one tenant only in
// that tenant. (Without an erasure store every erasure that passes the
// holds is refused with audit.ErrErasureOff.)
func TestEraseRefusedByTheLegalHoldOfItsTenant(t *testing.T) {
	h := command.NewEraseHandler(nil, nil, command.EraseConfig{
		Tenants:         true,
		HoldUsers:       []string{"u-all"},
		TenantHoldUsers: []audit.TenantUser{{Tenant: "acme", UserID: "u-acme"}},
	})
	s := func(v string) *string { return &v }
	for _, c := range []struct {
		user, tenant, want string
	}{
		{"u-all", "globex", "(AUDITQ_RETENTION_HOLD_USERS)"},
		{"u-acme", "acme", `legal hold in tenant "acme" (AUDITQ_TENANT_HOLD_USERS)`},
	} {
		_, err := h.Handle(context.Background(), command.EraseRequest{UserID: c.user, Tenant: s(c.tenant)}, nil)
		if !errors.Is(err, audit.ErrLegalHold) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("erase %s in %s: %v, want a legal hold naming %s", c.user, c.tenant, err, c.want)
		}
	}
	for _, c := range []struct{ user, tenant string }{{"u-acme", "globex"}, {"u-free", "acme"}} {
		if _, err := h.Handle(context.Background(), command.EraseRequest{UserID: c.user, Tenant: s(c.tenant)}, nil); !errors.Is(err, audit.ErrErasureOff) {
			t.Errorf("erase of %s in %s, not held there: %v, want audit.ErrErasureOff", c.user, c.tenant, err)
		}
	}
}

// The tenant of an erasure: required with tenants on ("" is the default
// tenant), absent or "" with tenants off, a tenant name either way; a
// held user is refused in every tenant. Requests that pass these rules
// reach the store (here none: personal data not encrypted).
func TestEraseTenantRules(t *testing.T) {
	s := func(v string) *string { return &v }
	cases := []struct {
		tenants bool
		user    string
		tenant  *string
		field   string // the field a *audit.ValidationError names; "" = none
		err     error  // else the error wrapped
	}{
		{true, "u-1", nil, "tenant", nil},
		{true, "u-1", s("a.b"), "tenant", nil},
		{true, "u-1", s("acme"), "", audit.ErrErasureOff},
		{true, "u-1", s(""), "", audit.ErrErasureOff},
		{false, "u-1", s("acme"), "tenant", nil},
		{false, "u-1", nil, "", audit.ErrErasureOff},
		{false, "u-1", s(""), "", audit.ErrErasureOff},
		{true, "held", s("acme"), "", audit.ErrLegalHold},
		{false, "held", nil, "", audit.ErrLegalHold},
		{true, "", s("acme"), "userId", nil},
	}
	for _, c := range cases {
		h := command.NewEraseHandler(nil, nil, command.EraseConfig{HoldUsers: []string{"held"}, Tenants: c.tenants})
		_, err := h.Handle(context.Background(), command.EraseRequest{UserID: c.user, Tenant: c.tenant}, nil)
		var ve *audit.ValidationError
		switch {
		case c.field != "" && (!errors.As(err, &ve) || ve.Field != c.field):
			t.Errorf("tenants %v, user %q, tenant %v: %v, want an error naming %s", c.tenants, c.user, c.tenant, err, c.field)
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("tenants %v, user %q, tenant %v: %v, want %v", c.tenants, c.user, c.tenant, err, c.err)
		}
	}
	h := command.NewEraseHandler(nil, nil, command.EraseConfig{Tenants: true})
	if _, err := h.Handle(context.Background(), command.EraseRequest{UserID: "u-1"}, nil); err == nil || !strings.Contains(err.Error(), "tenant: is required when tenants are on") {
		t.Fatalf("no tenant with tenants on: %v", err)
	}
}

// A held user in a list refuses the whole list, naming its index, before
// anything reaches the store.
func TestEraseListRefusedByALegalHoldNamesTheIndex(t *testing.T) {
	h := command.NewEraseHandler(nil, nil, command.EraseConfig{HoldUsers: []string{"held"}})
	_, err := h.HandleList(context.Background(), command.EraseRequest{UserIDs: []string{"u-1", "u-2", "held", "u-3"}}, nil)
	if !errors.Is(err, audit.ErrLegalHold) || !strings.Contains(err.Error(), "userIds[2]") {
		t.Fatalf("erase a list with a held user: %v, want a legal hold naming userIds[2]", err)
	}
}
