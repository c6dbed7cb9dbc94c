package command_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// An erasure reaches the user in every tenant, so a legal hold of the user
// in any one tenant refuses it, naming the setting and the tenant; a hold
// of another user does not. (Without an erasure store every erasure that
// passes the holds is refused with audit.ErrErasureOff.)
func TestEraseRefusedByALegalHoldInAnyTenant(t *testing.T) {
	h := command.NewEraseHandler(nil, nil, command.EraseConfig{
		HoldUsers:       []string{"u-all"},
		TenantHoldUsers: []audit.TenantUser{{Tenant: "acme", UserID: "u-acme"}},
	})
	for _, c := range []struct {
		user, want string
	}{
		{"u-all", "(AUDITQ_RETENTION_HOLD_USERS)"},
		{"u-acme", `legal hold in tenant "acme" (AUDITQ_TENANT_HOLD_USERS)`},
	} {
		_, err := h.Handle(context.Background(), command.EraseRequest{UserID: c.user}, nil)
		if !errors.Is(err, audit.ErrLegalHold) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("erase %s: %v, want a legal hold naming %s", c.user, err, c.want)
		}
	}
	if _, err := h.Handle(context.Background(), command.EraseRequest{UserID: "u-free"}, nil); !errors.Is(err, audit.ErrErasureOff) {
		t.Errorf("erase of a user without hold: %v, want audit.ErrErasureOff", err)
	}
}
