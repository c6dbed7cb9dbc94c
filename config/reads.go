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
	if c.RequestConcurrency < 0 || c.RequestConcurrency > 1000 {
		bad("AUDITQ_REQUEST_CONCURRENCY: must be auto or between 1 and 1000, got %d", c.RequestConcurrency)
	}
	if c.RequestReportConcurrency < 0 || c.RequestReportConcurrency > 1000 {
		bad("AUDITQ_REQUEST_REPORT_CONCURRENCY: must be auto or between 1 and 1000, got %d", c.RequestReportConcurrency)
	}
	if c.RequestQueueWait < 10*time.Millisecond || c.RequestQueueWait > 10*time.Minute {
		bad("AUDITQ_REQUEST_QUEUE_WAIT: must be between 10ms and 10m, got %s", c.RequestQueueWait)
	}
	return errs
}

// RequestPools returns how many requests one instance handles at once:
// requests is AUDITQ_REQUEST_CONCURRENCY, reports
// AUDITQ_REQUEST_REPORT_CONCURRENCY, each resolved from
// AUDITQ_DATABASE_MAX_CONNS when auto (half and a quarter of it, at least
// 1), so that requests never hold every connection that ingest needs.
func (c Config) RequestPools() (requests, reports int) {
	requests, reports = c.RequestConcurrency, c.RequestReportConcurrency
	if requests == 0 {
		requests = max(c.DatabaseConns/2, 1)
	}
	if reports == 0 {
		reports = max(c.DatabaseConns/4, 1)
	}
	return requests, reports
}

// intOrAuto reads a positive integer, or "auto" as 0.
func (p *parser) intOrAuto(name string) int {
	s := p.str(name)
	if s == "auto" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		p.errs = append(p.errs, fmt.Errorf("%s: must be auto or a positive whole number, got %q", name, s))
	}
	return n
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
