package service

import (
	"bufio"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// inFlightBytes returns the byte budget of messages in flight: the
// configured one; for auto, 1/8 of the soft memory limit soft, at least
// 16 MiB, or without a soft limit (soft <= 0) 1/32 of the memory limit,
// between 16 MiB and 64 MiB.
func inFlightBytes(configured, soft int64) int64 {
	const lo, hi = 16 << 20, 64 << 20
	switch {
	case configured > 0:
		return configured
	case soft > 0:
		return max(soft/8, lo)
	}
	return min(max(memoryLimit()/32, lo), hi)
}

// Bounds of the automatic soft memory limit. The service's own working
// set (messages in flight, group-commit batches, the embedded server's
// caches and duplicate window) is 45-65 MB during a flood; the room
// above it is garbage between collections, so the limit trades RSS for
// the collector's CPU: in the benchmark's floods the peak RSS is about
// the limit plus 30 MB (128 MiB: 156 MB, 160 MiB: 188 MB).
const (
	softLimitMin = 64 << 20
	softLimitMax = 144 << 20
)

// softMemoryLimit returns the soft memory limit for AUDITQ_MEMORY_LIMIT
// (configured: 0 auto, -1 off, else bytes): for auto a quarter of the
// memory limit, between softLimitMin and softLimitMax; 0 for off.
func softMemoryLimit(configured int64) int64 {
	switch {
	case configured > 0:
		return configured
	case configured < 0:
		return 0
	}
	limit := memoryLimit()
	if limit <= 0 {
		return softLimitMax
	}
	return min(max(limit/4, softLimitMin), softLimitMax)
}

// applyMemoryLimit sets the Go runtime's soft memory limit to soft
// (nothing for 0) unless GOMEMLIMIT already set one, and returns the
// limit in effect (0: none).
func applyMemoryLimit(soft int64) int64 {
	if current := debug.SetMemoryLimit(-1); current != math.MaxInt64 {
		return current // GOMEMLIMIT wins
	}
	if soft <= 0 {
		return 0
	}
	debug.SetMemoryLimit(soft)
	return soft
}

// gcPercentUnderLimit is the collector's GOGC while a soft memory limit
// is in effect and the environment sets none: the limit, not the live
// heap, then decides when the heap is collected during a flood (with the
// runtime's 100, a live heap of 50 MB would be collected at 100 MB, well
// below the limit); between floods the heap grows to three times its
// live part (about 20 MB) before a collection.
const gcPercentUnderLimit = 200

// applyGCPercent sets the collector's GOGC to gcPercentUnderLimit when a
// soft memory limit is in effect (limit > 0) and GOGC is not set in the
// environment (gogcSet false); otherwise it changes nothing.
func applyGCPercent(limit int64, gogcSet bool) {
	if limit > 0 && !gogcSet {
		debug.SetGCPercent(gcPercentUnderLimit)
	}
}

// memoryLimit returns the memory this process may use: the cgroup v2 or
// v1 limit when one is set, else the physical memory, else 0.
func memoryLimit() int64 {
	physical := meminfoTotal()
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && n > 0 && (physical == 0 || n < physical) {
			return n // "max" (no limit) does not parse; v1's huge "no limit" exceeds physical
		}
	}
	return physical
}

// meminfoTotal returns MemTotal of /proc/meminfo in bytes, 0 if unknown.
func meminfoTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
