package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Personal data modes (AUDITQ_PERSONAL_DATA, docs/personal-data.md).
const (
	PersonalOff          = "off"
	PersonalPseudonymise = "pseudonymise"
	PersonalEncrypt      = "encrypt"
)

// TenantPersonalModes returns AUDITQ_TENANT_PERSONAL_DATA as modes by
// tenant; Validate has checked every entry.
func (c Config) TenantPersonalModes() map[string]string {
	out := map[string]string{}
	for _, e := range c.TenantPersonalData {
		t, m, _ := strings.Cut(e, ":")
		out[strings.TrimSpace(t)] = strings.TrimSpace(m)
	}
	return out
}

// PseudonymKeyPath returns where the key of the pseudonym key lives:
// AUDITQ_PSEUDONYM_KEY_FILE, else AUDITQ_KEK_FILE with ".pseudonym"
// appended; "" without a key-encryption key.
func (c Config) PseudonymKeyPath() string {
	switch {
	case c.PseudonymKeyFile != "":
		return c.PseudonymKeyFile
	case c.KEKFile != "":
		return filepath.Clean(c.KEKFile) + ".pseudonym"
	}
	return ""
}

func validMode(m string) bool {
	return m == PersonalOff || m == PersonalPseudonymise || m == PersonalEncrypt
}

func (c Config) validatePersonal() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validMode(c.PersonalData) {
		bad("AUDITQ_PERSONAL_DATA: must be off, pseudonymise or encrypt, got %q", c.PersonalData)
	}
	// The modes in use: a key-encryption key is needed if any is not off.
	modes := map[string]bool{c.PersonalData: true}
	if !c.Tenants && len(c.TenantPersonalData) > 0 {
		bad("AUDITQ_TENANT_PERSONAL_DATA: applies only with AUDITQ_TENANTS=true")
	}
	errs = append(errs, checkTenantEntries("AUDITQ_TENANT_PERSONAL_DATA", "tenant:mode", "acme:encrypt", c.TenantPersonalData, func(m string) string {
		if !validMode(m) {
			return fmt.Sprintf("the mode must be off, pseudonymise or encrypt, got %q", m)
		}
		modes[m] = true
		return ""
	})...)
	if c.KEKFile == "" {
		for _, m := range []string{PersonalPseudonymise, PersonalEncrypt} {
			if modes[m] {
				bad("AUDITQ_KEK_FILE: required when AUDITQ_PERSONAL_DATA or a tenant of AUDITQ_TENANT_PERSONAL_DATA is %s: a file holding the key-encryption key (openssl rand -hex 32)", m)
				break
			}
		}
		if c.PseudonymKeyFile != "" {
			bad("AUDITQ_PSEUDONYM_KEY_FILE: only used with AUDITQ_KEK_FILE")
		}
	}
	if len(c.PersonalDetailKeys) > 0 && !modes[PersonalEncrypt] {
		bad("AUDITQ_PERSONAL_DETAILS_KEYS: only used when AUDITQ_PERSONAL_DATA (or a tenant of AUDITQ_TENANT_PERSONAL_DATA) is encrypt, it is %s", c.PersonalData)
	}
	return errs
}
