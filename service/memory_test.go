package service

import (
	"runtime/debug"
	"testing"
)

func TestMemoryBudgets(t *testing.T) {
	const mib = 1 << 20
	if got := softMemoryLimit(-1); got != 0 {
		t.Errorf("off: soft limit %d, want 0", got)
	}
	if got := softMemoryLimit(300 * mib); got != 300*mib {
		t.Errorf("configured: soft limit %d, want %d", got, 300*mib)
	}
	if got := softMemoryLimit(0); got < softLimitMin || got > softLimitMax {
		t.Errorf("auto: soft limit %d MiB, want between %d and %d", got/mib, softLimitMin/mib, softLimitMax/mib)
	}
	for _, c := range []struct{ configured, soft, want int64 }{
		{5 * mib, 160 * mib, 5 * mib},
		{0, 160 * mib, 20 * mib},
		{0, 64 * mib, 16 * mib},
		{0, 1024 * mib, 128 * mib},
	} {
		if got := inFlightBytes(c.configured, c.soft); got != c.want {
			t.Errorf("inFlightBytes(%d, %d) = %d, want %d", c.configured, c.soft, got, c.want)
		}
	}
	if got := inFlightBytes(0, 0); got < 16*mib || got > 64*mib {
		t.Errorf("no soft limit: in-flight bytes %d MiB, want 16 to 64", got/mib)
	}
}

func TestGCPercentUnderLimit(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	for _, c := range []struct {
		name    string
		limit   int64
		gogcSet bool
		want    int
	}{
		{"soft limit, no GOGC", 144 << 20, false, gcPercentUnderLimit},
		{"soft limit, GOGC set", 144 << 20, true, 100},
		{"no soft limit", 0, false, 100},
	} {
		debug.SetGCPercent(100)
		applyGCPercent(c.limit, c.gogcSet)
		if got := debug.SetGCPercent(100); got != c.want {
			t.Errorf("%s: GOGC %d, want %d", c.name, got, c.want)
		}
	}
}
