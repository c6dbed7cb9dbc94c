package config

import "fmt"

// Personal data modes (AUDITQ_PERSONAL_DATA, docs/personal-data.md).
const (
	PersonalOff          = "off"
	PersonalPseudonymise = "pseudonymise"
	PersonalEncrypt      = "encrypt"
)

func (c Config) validatePersonal() []error {
	var errs []error
	switch c.PersonalData {
	case PersonalOff, PersonalPseudonymise, PersonalEncrypt:
	default:
		errs = append(errs, fmt.Errorf("AUDITQ_PERSONAL_DATA: must be off, pseudonymise or encrypt, got %q", c.PersonalData))
	}
	if c.PersonalData != PersonalOff && c.KEKFile == "" {
		errs = append(errs, fmt.Errorf("AUDITQ_KEK_FILE: required when AUDITQ_PERSONAL_DATA is %s: a file holding the key-encryption key (openssl rand -hex 32)", c.PersonalData))
	}
	if len(c.PersonalDetailKeys) > 0 && c.PersonalData != PersonalEncrypt {
		errs = append(errs, fmt.Errorf("AUDITQ_PERSONAL_DETAILS_KEYS: only used when AUDITQ_PERSONAL_DATA is encrypt, it is %s", c.PersonalData))
	}
	return errs
}
