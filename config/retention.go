package config

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
)

// Off disables a schedule (AUDITQ_CLEANUP_CRON, AUDITQ_REPORT_CRON).
const Off = "off"

// SchedulesEnabled reports whether any JetStream message schedule is on,
// which needs nats-server 2.14 or newer.
func (c Config) SchedulesEnabled() bool {
	return c.CleanupCron != Off || c.ReportCron != Off
}

// validateRetention checks the retention and schedule settings.
func (c Config) validateRetention() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.RetentionMinDays < 1 || c.RetentionMinDays > 36500 {
		bad("AUDITQ_RETENTION_MIN_DAYS: must be between 1 and 36500")
	}
	if c.RetentionDays < c.RetentionMinDays || c.RetentionDays > 36500 {
		bad("AUDITQ_RETENTION_DAYS: must be between AUDITQ_RETENTION_MIN_DAYS (%d) and 36500", c.RetentionMinDays)
	}
	for _, u := range c.HoldUsers {
		if utf8.RuneCountInString(u) > 256 {
			bad("AUDITQ_RETENTION_HOLD_USERS: %q is longer than 256 characters", u[:32]+"...")
		}
	}
	for _, r := range c.HoldResources {
		typ, id, ok := strings.Cut(r, ":")
		if !ok || typ == "" || id == "" {
			bad("AUDITQ_RETENTION_HOLD_RESOURCES: %q must be type:id, e.g. document:42", r)
		}
	}
	if len(c.CleanupExclude) > 100 {
		bad("AUDITQ_CLEANUP_EXCLUDE_ACTIONS: at most 100 actions, got %d", len(c.CleanupExclude))
	}
	for _, a := range c.CleanupExclude {
		if utf8.RuneCountInString(a) > 256 {
			bad("AUDITQ_CLEANUP_EXCLUDE_ACTIONS: %q is longer than 256 characters", a[:32]+"...")
		}
	}
	if c.CleanupTimeout <= 0 {
		bad("AUDITQ_CLEANUP_TIMEOUT: must be positive")
	}
	if err := checkSchedule(c.CleanupCron); err != nil {
		bad("AUDITQ_CLEANUP_CRON: %v", err)
	}
	if err := checkSchedule(c.ReportCron); err != nil {
		bad("AUDITQ_REPORT_CRON: %v", err)
	}
	switch c.CleanupTimeZone {
	case "", "Local":
		bad("AUDITQ_CLEANUP_TIMEZONE: must be an IANA time zone such as UTC or Europe/Berlin, got %q", c.CleanupTimeZone)
	default:
		if _, err := time.LoadLocation(c.CleanupTimeZone); err != nil {
			bad("AUDITQ_CLEANUP_TIMEZONE: unknown time zone %q", c.CleanupTimeZone)
		} else if strings.HasPrefix(c.CleanupCron, "@every ") && c.CleanupTimeZone != "UTC" {
			bad("AUDITQ_CLEANUP_TIMEZONE: applies to cron patterns only, not to %q", c.CleanupCron)
		}
	}
	return errs
}

// scheduleAliases are the predefined patterns nats-server accepts.
var scheduleAliases = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// checkSchedule accepts what nats-server 2.14 accepts as a repeating
// schedule - a six-field cron "sec min hour dom mon dow", "@every <d>"
// (d >= 1s), @hourly/@daily/@weekly/@monthly/@yearly - or "off".
func checkSchedule(s string) error {
	if s == Off || scheduleAliases[s] {
		return nil
	}
	if d, ok := strings.CutPrefix(s, "@every "); ok {
		if every, err := time.ParseDuration(strings.TrimSpace(d)); err != nil || every < time.Second {
			return fmt.Errorf("@every needs a duration of at least 1s, got %q", s)
		}
		return nil
	}
	fields := strings.Fields(s)
	if len(fields) != 6 {
		hint := ""
		if len(fields) == 5 {
			hint = fmt.Sprintf(" (a five-field cron lacks the leading seconds: %q)", "0 "+s)
		}
		return fmt.Errorf("must be a six-field cron \"sec min hour dom mon dow\" (e.g. \"0 0 3 * * *\"), @every <duration>, @daily or %q, got %q%s", Off, s, hint)
	}
	if strings.Contains(s, "TZ=") {
		return fmt.Errorf("set the time zone in AUDITQ_CLEANUP_TIMEZONE, not in the pattern %q", s)
	}
	if _, err := cronParser.Parse(s); err != nil {
		return fmt.Errorf("invalid cron %q: %v", s, err)
	}
	return nil
}

// list reads a comma-separated variable: entries trimmed, empty ones and
// repeats dropped.
func (p *parser) list(name string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, v := range strings.Split(p.str(name), ",") {
		if v = strings.TrimSpace(v); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
