package audit

import (
	"errors"
	"fmt"
	"strconv"
)

// Tenants (docs/tenants.md). An event's tenant comes from the subject it
// arrived on, which the NATS server lets only that tenant's account
// publish to, never from its payload. DefaultTenant is the tenant of every
// event of a single-tenant deployment, and of events published on
// audit.log and audit.bulk.
const (
	DefaultTenant = ""
	// MaxTenantLen bounds a tenant name; a tenant is one NATS subject
	// token and the name of its NATS account.
	MaxTenantLen = 64
)

// CheckTenant returns a *ValidationError naming field unless t is a
// tenant name: 1 to MaxTenantLen characters of A-Z, a-z, 0-9, '_' and
// '-' (a NATS subject token without wildcards or dots, usable as an
// account name).
func CheckTenant(field, t string) error {
	if t == "" {
		return Invalid(field, "must be a tenant name: 1 to %d of A-Z, a-z, 0-9, _ and -", MaxTenantLen)
	}
	if len(t) > MaxTenantLen {
		return Invalid(field, "must be a tenant name of at most %d characters, got %d", MaxTenantLen, len(t))
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !tenantByte(c) {
			return Invalid(field, "must be a tenant name of A-Z, a-z, 0-9, _ and -, got %q at byte %d", string(c), i)
		}
	}
	return nil
}

// tenantByte reports whether c may appear in a tenant name.
func tenantByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// ErrForbidden marks a request that asks for more than its caller may
// see: a reader bound to one tenant asking for another.
var ErrForbidden = errors.New("forbidden")

// ForbiddenError names the request field a caller may not set as it did.
type ForbiddenError struct {
	Field string
	Rule  string
}

func (e *ForbiddenError) Error() string { return e.Field + ": " + e.Rule }

// Unwrap makes errors.Is(err, ErrForbidden) hold.
func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// Forbidden builds a ForbiddenError for field with a formatted rule.
func Forbidden(field, format string, args ...any) *ForbiddenError {
	return &ForbiddenError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// TenantScope is what a reader may see: every tenant (Bound false), or the
// events, reports and proofs of Tenant only.
type TenantScope struct {
	Bound  bool
	Tenant string
}

// Resolve returns the tenant filter of a request from a caller of scope s
// that asked for requested (nil: not said): nil means every tenant. A
// bound caller gets its own tenant whatever it left out, and a
// *ForbiddenError naming field when it asked for another; a malformed
// name is a *ValidationError naming field.
func (s TenantScope) Resolve(field string, requested *string) (*string, error) {
	if requested != nil && *requested != DefaultTenant {
		if err := CheckTenant(field, *requested); err != nil {
			return nil, err
		}
	}
	if !s.Bound {
		return requested, nil
	}
	if requested != nil && *requested != s.Tenant {
		return nil, Forbidden(field, "this reader is bound to tenant %q and may not read tenant %q", s.Tenant, *requested)
	}
	t := s.Tenant
	return &t, nil
}

// EventKey is one string for event id of tenant, for receivers that know
// an event by a single id (a log stream's Nats-Msg-Id, an Elasticsearch
// _id): the id itself for the default tenant, so that a single-tenant
// deployment's keys stay its ids, and "<tenant>/<id>" for another tenant,
// since an id is unique within its tenant only. A default-tenant id of
// that very form (only operators publish those) shares its key.
func EventKey(tenant, id string) string {
	if tenant == DefaultTenant {
		return id
	}
	return tenant + "/" + id
}

// EventRef names event id of tenant in messages: the quoted id, and its
// tenant unless that is the default one.
func EventRef(tenant, id string) string {
	if tenant == DefaultTenant {
		return strconv.Quote(id)
	}
	return strconv.Quote(id) + " of tenant " + strconv.Quote(tenant)
}

// ResolveOne returns the one tenant a lookup by event id (of a caller of
// scope s that asked for requested) reads: as Resolve, but an unbound
// caller that did not say gets the default tenant, since an event id is
// unique within its tenant only.
func (s TenantScope) ResolveOne(field string, requested *string) (string, error) {
	t, err := s.Resolve(field, requested)
	if err != nil || t == nil {
		return DefaultTenant, err
	}
	return *t, nil
}

// AllowsReport reports whether a caller of scope s may see a stored
// report of tenant t (nil: a report over every tenant, for unbound
// callers only).
func (s TenantScope) AllowsReport(t *string) bool {
	return !s.Bound || t != nil && *t == s.Tenant
}
