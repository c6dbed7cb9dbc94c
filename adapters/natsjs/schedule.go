package natsjs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
)

// JetStream message schedule headers (nats-server 2.12+, cron 2.14+).
const (
	HeaderSchedule         = "Nats-Schedule"           // the pattern, on the schedule message
	HeaderScheduleTarget   = "Nats-Schedule-Target"    // where each firing is written
	HeaderScheduleTimeZone = "Nats-Schedule-Time-Zone" // IANA zone of a cron pattern
	HeaderScheduler        = "Nats-Scheduler"          // on a fired message: the schedule's subject
	HeaderScheduleNext     = "Nats-Schedule-Next"      // on a fired message: the next firing
)

// MinScheduleMajor and MinScheduleMinor name the oldest nats-server whose
// message schedules understand cron patterns: 2.14 (2.12 knew only @at).
const (
	MinScheduleMajor = 2
	MinScheduleMinor = 14
)

// Schedule is a named JetStream message schedule: a message stored on the
// schedule's own subject that makes the server write Payload to Target each
// time Pattern fires. The server keeps one live schedule per subject.
type Schedule struct {
	// Name is the last token of the schedule subject (prefix + Name).
	Name string
	// Pattern is a six-field cron "sec min hour dom mon dow", "@every
	// <duration>" (at least 1s), or @hourly, @daily, @weekly, @monthly,
	// @yearly.
	Pattern string
	// TimeZone is the IANA zone of a cron pattern; "" or "UTC" mean UTC.
	TimeZone string
	// Target is the subject, in the same stream, that every firing is
	// written to.
	Target string
	// Payload is the body of every fired message.
	Payload []byte
}

// InstalledSchedule is a schedule as stored in the stream.
type InstalledSchedule struct {
	Schedule
	Subject   string    // the schedule message's subject
	Sequence  uint64    // its stream sequence
	Installed time.Time // when it was stored
	Next      time.Time // next firing computed from Pattern; zero if it cannot be computed
}

// Scheduler installs, removes and lists the message schedules kept in one
// stream under a subject prefix. The stream must allow message schedules
// and must not remove the schedule messages: no MaxAge, and no consumer
// whose filter matches the prefix (under work-queue retention an ack would
// delete the schedule). Schedule messages carry no Nats-Msg-Id: every header
// is copied into each fired message, and an id would make every firing look
// like the same message.
type Scheduler struct {
	js     jetstream.JetStream
	stream string
	prefix string
}

// NewScheduler returns a Scheduler for stream, with schedule subjects
// prefix + name (e.g. "audit.schedule.").
func NewScheduler(js jetstream.JetStream, stream, prefix string) *Scheduler {
	return &Scheduler{js: js, stream: stream, prefix: prefix}
}

// Subject returns the schedule subject of name.
func (sc *Scheduler) Subject(name string) string { return sc.prefix + name }

// Install makes s the live schedule named s.Name. When an identical schedule
// is already installed it changes nothing (so an @every phase survives
// restarts) and returns false; otherwise it publishes the schedule message,
// which replaces the previous one (the server rolls up the subject), and
// returns true. It returns an error for an invalid pattern or time zone
// (checked locally, then by the server) or when JetStream does not
// acknowledge the message.
func (sc *Scheduler) Install(ctx context.Context, s Schedule) (bool, error) {
	if err := checkName(s.Name); err != nil {
		return false, err
	}
	tz := normalizeZone(s.TimeZone)
	if _, err := NextFiring(s.Pattern, tz, time.Now(), time.Now()); err != nil {
		return false, fmt.Errorf("schedule %s: %w", s.Name, err)
	}
	subject := sc.Subject(s.Name)
	str, err := sc.js.Stream(ctx, sc.stream)
	if err != nil {
		return false, fmt.Errorf("schedule %s: stream %s: %w", s.Name, sc.stream, err)
	}
	if cur, err := str.GetLastMsgForSubject(ctx, subject); err == nil {
		if cur.Header.Get(HeaderSchedule) == s.Pattern && cur.Header.Get(HeaderScheduleTarget) == s.Target &&
			cur.Header.Get(HeaderScheduleTimeZone) == tz && bytes.Equal(cur.Data, s.Payload) {
			return false, nil
		}
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, fmt.Errorf("schedule %s: read %s: %w", s.Name, subject, err)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderSchedule, s.Pattern)
	m.Header.Set(HeaderScheduleTarget, s.Target)
	if tz != "" {
		m.Header.Set(HeaderScheduleTimeZone, tz)
	}
	m.Data = s.Payload
	if _, err := sc.js.PublishMsg(ctx, m, jetstream.WithExpectStream(sc.stream)); err != nil {
		return false, fmt.Errorf("install schedule %s (%q, target %s): %w", s.Name, s.Pattern, s.Target, err)
	}
	return true, nil
}

// Remove deletes the schedule named name, if installed, by purging its
// subject; it reports whether there was one. Messages it already fired
// stay in the stream and are handled as usual.
func (sc *Scheduler) Remove(ctx context.Context, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	subject := sc.Subject(name)
	str, err := sc.js.Stream(ctx, sc.stream)
	if err != nil {
		return false, fmt.Errorf("remove schedule %s: stream %s: %w", name, sc.stream, err)
	}
	if _, err := str.GetLastMsgForSubject(ctx, subject); errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("remove schedule %s: read %s: %w", name, subject, err)
	}
	if err := str.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return false, fmt.Errorf("remove schedule %s: purge %s: %w", name, subject, err)
	}
	return true, nil
}

// List returns the installed schedules, by name, with their next firing
// after now.
func (sc *Scheduler) List(ctx context.Context, now time.Time) ([]InstalledSchedule, error) {
	str, err := sc.js.Stream(ctx, sc.stream)
	if err != nil {
		return nil, fmt.Errorf("list schedules: stream %s: %w", sc.stream, err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(sc.prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var out []InstalledSchedule
	for subject := range info.State.Subjects {
		m, err := str.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list schedules: read %s: %w", subject, err)
		}
		pattern := m.Header.Get(HeaderSchedule)
		if pattern == "" {
			continue // not a schedule
		}
		is := InstalledSchedule{
			Schedule: Schedule{
				Name: strings.TrimPrefix(subject, sc.prefix), Pattern: pattern,
				TimeZone: m.Header.Get(HeaderScheduleTimeZone), Target: m.Header.Get(HeaderScheduleTarget),
				Payload: m.Data,
			},
			Subject: subject, Sequence: m.Sequence, Installed: m.Time.UTC(),
		}
		is.Next, _ = NextFiring(pattern, is.TimeZone, is.Installed, now)
		out = append(out, is)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// cronParser reads six-field cron patterns the way nats-server does (its
// parser derives from this one): seconds first, names for months and days,
// and day-of-month OR day-of-week when both are restricted.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// cronAliases are the predefined patterns nats-server accepts.
var cronAliases = map[string]string{
	"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
	"@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}

// NextFiring returns when a schedule with pattern and time zone tz, stored
// at installed, fires first after after. It returns an error for a pattern
// or zone the server would reject: a cron without exactly six fields, an
// @every shorter than a second, a time zone on an @every pattern.
func NextFiring(pattern, tz string, installed, after time.Time) (time.Time, error) {
	tz = normalizeZone(tz)
	if d, ok := strings.CutPrefix(pattern, "@every "); ok {
		every, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || every < time.Second {
			return time.Time{}, fmt.Errorf("pattern %q: @every needs a duration of at least 1s", pattern)
		}
		if tz != "" {
			return time.Time{}, fmt.Errorf("pattern %q: a time zone applies to cron patterns only", pattern)
		}
		// The server fires at installed + k*every (rounded to the second).
		next := installed.UTC().Round(time.Second).Add(every)
		if !next.After(after) {
			k := after.Sub(next)/every + 1
			next = next.Add(k * every)
		}
		return next, nil
	}
	spec := pattern
	if alias, ok := cronAliases[pattern]; ok {
		spec = alias
	}
	if n := len(strings.Fields(spec)); n != 6 {
		hint := ""
		if n == 5 {
			hint = " (a five-field cron lacks the leading seconds field: \"0 " + spec + "\")"
		}
		return time.Time{}, fmt.Errorf("pattern %q: a cron needs six fields, sec min hour dom mon dow%s", pattern, hint)
	}
	if strings.Contains(spec, "TZ=") {
		return time.Time{}, fmt.Errorf("pattern %q: set the time zone separately, not in the pattern", pattern)
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return time.Time{}, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	loc := time.UTC
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return time.Time{}, fmt.Errorf("time zone %q: %w", tz, err)
		}
	}
	next := sched.Next(after.In(loc))
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("pattern %q never fires", pattern)
	}
	return next.UTC(), nil
}

// normalizeZone maps the server's default zone to "".
func normalizeZone(tz string) string {
	if tz == "UTC" {
		return ""
	}
	return tz
}

func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return fmt.Errorf("schedule name %q: must be one non-empty subject token", name)
	}
	return nil
}

// CheckScheduleSupport returns nil when a nats-server of version (as
// reported by nats.Conn.ConnectedServerVersion, e.g. "2.15.2") supports
// cron message schedules, else an error saying which version is needed.
func CheckScheduleSupport(version string) error {
	major, minor, ok := parseVersion(version)
	if !ok {
		return fmt.Errorf("cannot tell the NATS server version (%q): cron message schedules need nats-server %d.%d or newer",
			version, MinScheduleMajor, MinScheduleMinor)
	}
	if major < MinScheduleMajor || (major == MinScheduleMajor && minor < MinScheduleMinor) {
		return fmt.Errorf("the NATS server is version %s, but cron message schedules need nats-server %d.%d or newer",
			version, MinScheduleMajor, MinScheduleMinor)
	}
	return nil
}

// parseVersion reads major and minor from "2.14.0", "v2.14.1-RC.2" and the
// like.
func parseVersion(v string) (major, minor int, ok bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	minorStr, _, _ := strings.Cut(parts[1], "-")
	var err1, err2 error
	major, err1 = strconv.Atoi(parts[0])
	minor, err2 = strconv.Atoi(minorStr)
	return major, minor, err1 == nil && err2 == nil && major >= 0 && minor >= 0
}
