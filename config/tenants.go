package config

import "fmt"

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
	return errs
}
