package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is the CPU time (user and system) used so far by the measured
// service (with its embedded NATS server), by all of PostgreSQL's
// processes, and by this process (the publisher).
type cpuUse struct{ serve, postgres, publisher time.Duration }

// clockTick is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuNow reads the CPU time used so far; pid is the service's. PostgreSQL's
// is that of its live processes plus what the postmaster collected from
// exited ones (autovacuum workers come and go).
func cpuNow(pid int) cpuUse {
	var u cpuUse
	if t, _, _, ok := procCPU(strconv.Itoa(pid)); ok {
		u.serve = t
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if comm, err := os.ReadFile(d + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		t, children, ppid, ok := procCPU(filepath.Base(d))
		if !ok {
			continue
		}
		u.postgres += t
		if comm, err := os.ReadFile("/proc/" + ppid + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			u.postgres += children // the postmaster
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.publisher = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u
}

// procCPU returns a process's own CPU time, that of its waited-for
// children, and its parent's pid, from /proc/<pid>/stat.
func procCPU(pid string) (own, children time.Duration, ppid string, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, "", false
	}
	// The command name (field 2) may hold spaces: fields count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, 0, "", false
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * clockTick
	}
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17.
	return tick(11) + tick(12), tick(13) + tick(14), f[1], true
}

// CPUPerEvent is the median CPU time per event of a service's throughput
// rounds, in microseconds: the service (with its embedded NATS server),
// PostgreSQL (all its processes, so including autovacuum and checkpoints
// of either database) and the publishing benchmark itself. It scatters
// too (a contended machine spends more cycles on the same work), but it
// says where the work goes and what a change adds to it.
type CPUPerEvent struct {
	Serve     float64 `json:"serve"`
	Postgres  float64 `json:"postgres"`
	Publisher float64 `json:"publisher"`
}

func (c CPUPerEvent) String() string {
	return fmt.Sprintf("%.1f / %.1f / %.1f us", c.Serve, c.Postgres, c.Publisher)
}

// cpuRounds collects the CPU time per event of rounds.
type cpuRounds struct{ serve, postgres, publisher []float64 }

// add records the CPU used between two readings over events.
func (r *cpuRounds) add(from, to cpuUse, events int) CPUPerEvent {
	per := func(a, b time.Duration) float64 { return float64((b - a).Nanoseconds()) / 1e3 / float64(events) }
	c := CPUPerEvent{per(from.serve, to.serve), per(from.postgres, to.postgres), per(from.publisher, to.publisher)}
	r.serve, r.postgres, r.publisher = append(r.serve, c.Serve), append(r.postgres, c.Postgres), append(r.publisher, c.Publisher)
	return c
}

func (r *cpuRounds) median() CPUPerEvent {
	return CPUPerEvent{median(r.serve), median(r.postgres), median(r.publisher)}
}

// machineBusy returns the CPU time the machine has spent busy (not idle,
// not waiting for I/O, not stolen by the hypervisor) and in all, from
// /proc/stat.
func machineBusy() (busy, total time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, _ := strconv.ParseInt(v, 10, 64)
		d := time.Duration(n) * clockTick
		total += d
		if i != 3 && i != 4 && i != 7 {
			busy += d
		}
	}
	return busy, total, true
}

// settle waits, up to limit, until the machine has been quiet (under 10 %
// busy) for a whole second, so that a measurement does not share the
// machine with the aftermath of the one before it (autovacuum, report
// roll-ups of the hours it filled). It returns how long it waited and
// whether the machine became quiet.
func settle(limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		b0, t0, ok := machineBusy()
		if !ok {
			return 0, false
		}
		time.Sleep(time.Second)
		b1, t1, _ := machineBusy()
		if t1 > t0 && float64(b1-b0) < 0.10*float64(t1-t0) {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}
