package service

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/auditq/auditq/config"
)

func TestStartFailsOnANATSServerWithoutCronSchedules(t *testing.T) {
	on, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	err = checkScheduleServer(on, "2.9.25")
	if err == nil || !strings.Contains(err.Error(), "2.9.25") || !strings.Contains(err.Error(), "AUDITQ_CLEANUP_CRON=off") {
		t.Fatalf("error = %v", err)
	}
	if err := checkScheduleServer(on, "2.14.0"); err != nil {
		t.Fatal(err)
	}
	off := on
	off.CleanupCron, off.ReportCron = config.Off, config.Off
	if err := checkScheduleServer(off, "2.9.25"); err != nil {
		t.Fatalf("schedules off: %v", err)
	}
	reportOnly := off
	reportOnly.ReportCron = "0 15 0 * * *"
	if err := checkScheduleServer(reportOnly, "2.12.0"); err == nil {
		t.Fatal("report schedule on an old server accepted")
	}
}

func TestDesiredSchedulesFollowConfig(t *testing.T) {
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"AUDITQ_RETENTION_DAYS": "400", "AUDITQ_CLEANUP_EXCLUDE_ACTIONS": "a.b, c"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := desiredSchedules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, r := want[scheduleCleanup], want[scheduleReport]
	if c == nil || c.Pattern != "0 0 3 * * *" || c.TimeZone != "UTC" || c.Target != "audit.cleanup" ||
		string(c.Payload) != `{"retentionDays":400,"excludeActions":["a.b","c"]}` {
		t.Fatalf("cleanup schedule: %+v", c)
	}
	if r == nil || r.Pattern != "0 15 0 * * *" || r.Target != "audit.report.generate" || string(r.Payload) != `{"reportType":"daily"}` {
		t.Fatalf("report schedule: %+v", r)
	}
	cfg.CleanupCron, cfg.ReportCron = config.Off, config.Off
	want, _ = desiredSchedules(cfg)
	names := slices.Sorted(maps.Keys(want))
	if !reflect.DeepEqual(names, []string{"cleanup", "report-daily"}) || want[scheduleCleanup] != nil || want[scheduleReport] != nil {
		t.Fatalf("off: %v", want)
	}
}
