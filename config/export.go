package config

import (
	"fmt"
	"time"
)

// validateExport checks the settings of exports (audit.export).
func (c Config) validateExport() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ExportPageEvents < 1 || c.ExportPageEvents > 10000 {
		bad("AUDITQ_EXPORT_PAGE_EVENTS: must be between 1 and 10000")
	}
	if c.ExportChunkBytes < 4096 || c.ExportChunkBytes > 4<<20 {
		bad("AUDITQ_EXPORT_CHUNK_BYTES: must be between 4096 and 4194304")
	}
	if c.ExportWindow < 1 || c.ExportWindow > 1024 {
		bad("AUDITQ_EXPORT_WINDOW: must be between 1 and 1024")
	}
	if c.ExportAckTimeout < 100*time.Millisecond || c.ExportAckTimeout > time.Hour {
		bad("AUDITQ_EXPORT_ACK_TIMEOUT: must be between 100ms and 1h")
	}
	if c.ExportMaxRunning < 1 || c.ExportMaxRunning > 256 {
		bad("AUDITQ_EXPORT_MAX_RUNNING: must be between 1 and 256")
	}
	return errs
}
