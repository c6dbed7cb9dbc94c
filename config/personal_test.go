package config_test

import (
	"maps"
	"testing"
)

// TestTenantPersonalData checks AUDITQ_TENANT_PERSONAL_DATA: each bad
// entry is refused naming the setting and the entry; a mode other than
// off, for any tenant, needs AUDITQ_KEK_FILE; the pseudonym key file
// defaults to the KEK file's with .pseudonym appended.
func TestTenantPersonalData(t *testing.T) {
	tenants := map[string]string{"AUDITQ_TENANTS": "true", "AUDITQ_NATS_CONFIG": "nats.conf"}
	with := func(vars map[string]string) map[string]string {
		out := maps.Clone(tenants)
		maps.Copy(out, vars)
		return out
	}
	kek := map[string]string{"AUDITQ_KEK_FILE": "/var/lib/auditq/kek/kek"}
	checkLoads(t, []loadCase{
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:off,globex:off"}), ""},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:encrypt"}), "AUDITQ_KEK_FILE: required when AUDITQ_PERSONAL_DATA or a tenant of AUDITQ_TENANT_PERSONAL_DATA is encrypt"},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:pseudonymise"}), "AUDITQ_KEK_FILE: required"},
		{with(maps.Clone(kek)), ""},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:encrypt, globex:pseudonymise", "AUDITQ_KEK_FILE": "k", "AUDITQ_PERSONAL_DETAILS_KEYS": "email"}), ""},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:crypt", "AUDITQ_KEK_FILE": "k"}), `AUDITQ_TENANT_PERSONAL_DATA: "acme:crypt": the mode must be off, pseudonymise or encrypt`},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme"}), `AUDITQ_TENANT_PERSONAL_DATA: "acme" must be tenant:mode`},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "a.b:off"}), `AUDITQ_TENANT_PERSONAL_DATA: "a.b:off" must be tenant:mode`},
		{with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:off,acme:encrypt", "AUDITQ_KEK_FILE": "k"}), `AUDITQ_TENANT_PERSONAL_DATA: tenant "acme" is listed twice`},
		{map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": "acme:off"}, "AUDITQ_TENANT_PERSONAL_DATA: applies only with AUDITQ_TENANTS=true"},
		{with(map[string]string{"AUDITQ_PERSONAL_DETAILS_KEYS": "email", "AUDITQ_TENANT_PERSONAL_DATA": "acme:pseudonymise", "AUDITQ_KEK_FILE": "k"}), "AUDITQ_PERSONAL_DETAILS_KEYS: only used when"},
		{map[string]string{"AUDITQ_PSEUDONYM_KEY_FILE": "p"}, "AUDITQ_PSEUDONYM_KEY_FILE: only used with AUDITQ_KEK_FILE"},
	})
	c, err := load(with(map[string]string{"AUDITQ_TENANT_PERSONAL_DATA": " acme : encrypt ,globex:off", "AUDITQ_KEK_FILE": "/k/kek"}))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.TenantPersonalModes(); len(m) != 2 || m["acme"] != "encrypt" || m["globex"] != "off" || c.PseudonymKeyPath() != "/k/kek.pseudonym" {
		t.Fatalf("modes %v, pseudonym key %q", m, c.PseudonymKeyPath())
	}
	if c.PseudonymKeyFile = "/elsewhere"; c.PseudonymKeyPath() != "/elsewhere" {
		t.Fatalf("pseudonym key %q", c.PseudonymKeyPath())
	}
}
