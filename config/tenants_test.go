package config_test

import (
	"reflect"
	"strings"
	"testing"
)

// tenantVars are the settings of a deployment with tenants.
func tenantVars(extra map[string]string) map[string]string {
	vars := map[string]string{"AUDITQ_TENANTS": "true", "AUDITQ_NATS_CONFIG": "../deploy/nats/auditq-tenants.conf"}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

func TestTenantHolds(t *testing.T) {
	c, err := load(tenantVars(map[string]string{
		"AUDITQ_TENANT_HOLD_USERS":     "acme:u-1, globex:org:u:2,acme:u-1",
		"AUDITQ_TENANT_HOLD_RESOURCES": "acme:document:42,globex:case:2026:7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.TenantHoldUsers, []string{"acme:u-1", "globex:org:u:2"}) ||
		!reflect.DeepEqual(c.TenantHoldResources, []string{"acme:document:42", "globex:case:2026:7"}) {
		t.Fatalf("tenant holds: %q %q", c.TenantHoldUsers, c.TenantHoldResources)
	}
}

// A bad tenant hold is a start error naming the setting and the entry.
func TestTenantHoldsRejected(t *testing.T) {
	long := strings.Repeat("x", 257)
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_USERS": "u-1"}), `AUDITQ_TENANT_HOLD_USERS: "u-1" must be tenant:userId`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_USERS": "acme:"}), `AUDITQ_TENANT_HOLD_USERS: "acme:" must be tenant:userId`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_USERS": ":u-1"}), `AUDITQ_TENANT_HOLD_USERS: ":u-1" must be tenant:userId`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_USERS": "ac.me:u-1"}), `AUDITQ_TENANT_HOLD_USERS: "ac.me:u-1" must be tenant:userId`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_USERS": "acme:" + long}), `AUDITQ_TENANT_HOLD_USERS: "acme:xxx`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_RESOURCES": "acme:document"}), `AUDITQ_TENANT_HOLD_RESOURCES: "acme:document" must be tenant:type:id`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_RESOURCES": "document:42"}), `AUDITQ_TENANT_HOLD_RESOURCES: "document:42" must be tenant:type:id`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_RESOURCES": "a/b:document:42"}), `AUDITQ_TENANT_HOLD_RESOURCES: "a/b:document:42" must be tenant:type:id`},
		{tenantVars(map[string]string{"AUDITQ_TENANT_HOLD_RESOURCES": "acme::42"}), `AUDITQ_TENANT_HOLD_RESOURCES: "acme::42" must be tenant:type:id`},
		{map[string]string{"AUDITQ_TENANT_HOLD_USERS": "acme:u-1"}, "AUDITQ_TENANT_HOLD_USERS: applies only with AUDITQ_TENANTS=true"},
		{map[string]string{"AUDITQ_TENANT_HOLD_RESOURCES": "acme:document:42"}, "AUDITQ_TENANT_HOLD_RESOURCES: applies only with AUDITQ_TENANTS=true"},
	} {
		_, err := load(c.vars)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error containing %q", c.vars, err, c.want)
		}
	}
}
