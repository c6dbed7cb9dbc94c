package config

import (
	"fmt"
	"strconv"
	"time"
)

// validateReads checks the settings of reports and search.
func (c Config) validateReads() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > 10*time.Minute {
		bad("AUDITQ_REQUEST_TIMEOUT: must be between 100ms and 10m")
	}
	if c.ReportMaxDays < 1 || c.ReportMaxDays > 36600 {
		bad("AUDITQ_REPORT_MAX_DAYS: must be between 1 and 36600")
	}
	if c.RollupInterval < time.Second || c.RollupInterval > 24*time.Hour {
		bad("AUDITQ_ROLLUP_INTERVAL: must be between 1s and 24h")
	}
	return errs
}

// boolean parses true/false (also 1/0, t/f, as strconv.ParseBool does).
func (p *parser) boolean(name string) bool {
	s := p.str(name)
	v, err := strconv.ParseBool(s)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: must be true or false, got %q", name, s))
	}
	return v
}
