package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tenantName is a tenant's name (docs/tenants.md), as domain/audit
// checks it: a NATS subject token usable as an account name.
var tenantName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// TenantRetention returns AUDITQ_TENANT_RETENTION_DAYS as days by tenant;
// Validate has checked every entry.
func (c Config) TenantRetention() map[string]int {
	out := map[string]int{}
	for _, e := range c.TenantRetentionDays {
		t, d, _ := strings.Cut(e, ":")
		n, _ := strconv.Atoi(strings.TrimSpace(d))
		out[strings.TrimSpace(t)] = n
	}
	return out
}

// validateTenants checks the tenant settings: tenants need accounts (a
// NATS configuration file), since an event's tenant is the account that
// published it and a reader's the account that asked.
func (c Config) validateTenants() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Tenants && c.NATSConfigFile == "" {
		bad("AUDITQ_TENANTS: needs AUDITQ_NATS_CONFIG: a tenant is a NATS account, and without accounts any client could publish and read as any tenant")
	}
	if !c.Tenants && len(c.TenantUnboundAccounts) > 0 {
		bad("AUDITQ_TENANT_UNBOUND_ACCOUNTS: applies only with AUDITQ_TENANTS=true")
	}
	if !c.Tenants && len(c.TenantRetentionDays) > 0 {
		bad("AUDITQ_TENANT_RETENTION_DAYS: applies only with AUDITQ_TENANTS=true")
	}
	if !c.Tenants && len(c.TenantHoldUsers) > 0 {
		bad("AUDITQ_TENANT_HOLD_USERS: applies only with AUDITQ_TENANTS=true")
	}
	if !c.Tenants && len(c.TenantHoldResources) > 0 {
		bad("AUDITQ_TENANT_HOLD_RESOURCES: applies only with AUDITQ_TENANTS=true")
	}
	for _, e := range c.TenantHoldUsers {
		t, u, _ := strings.Cut(e, ":")
		switch {
		case !tenantName.MatchString(t) || u == "":
			bad("AUDITQ_TENANT_HOLD_USERS: %q must be tenant:userId, the tenant 1 to 64 of A-Z a-z 0-9 _ - (acme:u-1)", e)
		case utf8.RuneCountInString(u) > 256:
			bad("AUDITQ_TENANT_HOLD_USERS: %q: the user id is longer than 256 characters", e[:min(len(e), 48)]+"...")
		}
	}
	for _, e := range c.TenantHoldResources {
		t, r, _ := strings.Cut(e, ":")
		typ, id, ok := strings.Cut(r, ":")
		if !tenantName.MatchString(t) || !ok || typ == "" || id == "" {
			bad("AUDITQ_TENANT_HOLD_RESOURCES: %q must be tenant:type:id, the tenant 1 to 64 of A-Z a-z 0-9 _ - (acme:document:42)", e)
		}
	}
	seen := map[string]bool{}
	for _, e := range c.TenantRetentionDays {
		t, d, ok := strings.Cut(e, ":")
		t, d = strings.TrimSpace(t), strings.TrimSpace(d)
		n, err := strconv.Atoi(d)
		switch {
		case !ok || !tenantName.MatchString(t):
			bad("AUDITQ_TENANT_RETENTION_DAYS: %q must be tenant:days, the tenant 1 to 64 of A-Z a-z 0-9 _ - (acme:90)", e)
		case err != nil || n < c.RetentionMinDays || n > 36500:
			bad("AUDITQ_TENANT_RETENTION_DAYS: %q: days must be a whole number from AUDITQ_RETENTION_MIN_DAYS (%d) to 36500", e, c.RetentionMinDays)
		case seen[t]:
			bad("AUDITQ_TENANT_RETENTION_DAYS: tenant %q is listed twice", t)
		}
		seen[t] = true
	}
	return errs
}
