package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/auditq/auditq/config"
)

func load(vars map[string]string) (config.Config, error) {
	return config.Load(func(k string) string { return vars[k] })
}

func TestRetentionDefaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RetentionDays != 365 || c.RetentionMinDays != 30 || c.CleanupCron != "0 0 3 * * *" || c.CleanupTimeZone != "UTC" ||
		c.ReportCron != "0 15 0 * * *" || c.CleanupTimeout.Minutes() != 30 || len(c.CleanupExclude) != 0 ||
		len(c.HoldUsers) != 0 || len(c.HoldResources) != 0 || !c.SchedulesEnabled() {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestRetentionLists(t *testing.T) {
	c, err := load(map[string]string{
		"AUDITQ_CLEANUP_EXCLUDE_ACTIONS":  " security.breach, ,admin.access,security.breach ",
		"AUDITQ_RETENTION_HOLD_USERS":     "u1,u2",
		"AUDITQ_RETENTION_HOLD_RESOURCES": "document:42, case:2026:7",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.CleanupExclude, []string{"security.breach", "admin.access"}) ||
		!reflect.DeepEqual(c.HoldUsers, []string{"u1", "u2"}) ||
		!reflect.DeepEqual(c.HoldResources, []string{"document:42", "case:2026:7"}) {
		t.Fatalf("lists: %q %q %q", c.CleanupExclude, c.HoldUsers, c.HoldResources)
	}
}

func TestScheduleSettings(t *testing.T) {
	ok := []map[string]string{
		{"AUDITQ_CLEANUP_CRON": "off", "AUDITQ_REPORT_CRON": "off"},
		{"AUDITQ_CLEANUP_CRON": "* * * * * *"},
		{"AUDITQ_CLEANUP_CRON": "@every 1s"},
		{"AUDITQ_CLEANUP_CRON": "@daily", "AUDITQ_CLEANUP_TIMEZONE": "America/New_York"},
		{"AUDITQ_CLEANUP_CRON": "0 30 2 * * mon-fri", "AUDITQ_CLEANUP_TIMEZONE": "Europe/Berlin"},
		{"AUDITQ_RETENTION_DAYS": "30", "AUDITQ_RETENTION_MIN_DAYS": "30"},
	}
	for _, vars := range ok {
		if _, err := load(vars); err != nil {
			t.Errorf("%v: %v", vars, err)
		}
	}
	c, _ := load(map[string]string{"AUDITQ_CLEANUP_CRON": "off", "AUDITQ_REPORT_CRON": "off"})
	if c.SchedulesEnabled() {
		t.Error("both off: SchedulesEnabled")
	}

	bad := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"AUDITQ_CLEANUP_CRON": "0 3 * * *"}, `AUDITQ_CLEANUP_CRON: must be a six-field cron`},
		{map[string]string{"AUDITQ_CLEANUP_CRON": "0 3 * * *"}, `lacks the leading seconds: "0 0 3 * * *"`},
		{map[string]string{"AUDITQ_REPORT_CRON": "0 0 25 * * *"}, "AUDITQ_REPORT_CRON: invalid cron"},
		{map[string]string{"AUDITQ_CLEANUP_CRON": "@every 100ms"}, "at least 1s"},
		{map[string]string{"AUDITQ_CLEANUP_CRON": "nightly"}, "AUDITQ_CLEANUP_CRON"},
		{map[string]string{"AUDITQ_CLEANUP_CRON": "@every 1h", "AUDITQ_CLEANUP_TIMEZONE": "Europe/Berlin"}, "cron patterns only"},
		{map[string]string{"AUDITQ_CLEANUP_TIMEZONE": "Mars/Olympus"}, "AUDITQ_CLEANUP_TIMEZONE: unknown time zone"},
		{map[string]string{"AUDITQ_CLEANUP_TIMEZONE": "Local"}, "AUDITQ_CLEANUP_TIMEZONE"},
		{map[string]string{"AUDITQ_RETENTION_DAYS": "29"}, "AUDITQ_RETENTION_DAYS: must be between AUDITQ_RETENTION_MIN_DAYS (30)"},
		{map[string]string{"AUDITQ_RETENTION_MIN_DAYS": "0"}, "AUDITQ_RETENTION_MIN_DAYS"},
		{map[string]string{"AUDITQ_RETENTION_HOLD_RESOURCES": "42"}, `AUDITQ_RETENTION_HOLD_RESOURCES: "42" must be type:id`},
		{map[string]string{"AUDITQ_CLEANUP_TIMEOUT": "0s"}, "AUDITQ_CLEANUP_TIMEOUT"},
	}
	for _, c := range bad {
		_, err := load(c.vars)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to contain %q", c.vars, err, c.want)
		}
	}
}
