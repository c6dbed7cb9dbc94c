package service

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// inFlightBytes returns the byte budget of messages in flight: the
// configured one, or for auto 1/32 of the memory limit, between 16 MiB
// and 64 MiB.
func inFlightBytes(configured int64) int64 {
	if configured > 0 {
		return configured
	}
	const lo, hi = 16 << 20, 64 << 20
	return min(max(memoryLimit()/32, lo), hi)
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
