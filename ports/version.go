package ports

import (
	"regexp"
	"runtime/debug"
	"strings"
	"time"
)

// Build is what the binary knows of its own build: the main module's
// version and, when it was built from a VCS checkout, the commit.
type Build struct {
	// Version is the main module's version: a tag (v1.2.3), a
	// pseudo-version, or "(devel)" when the go command knew none.
	Version   string
	Revision  string    // vcs.revision; "" when unknown
	Time      time.Time // vcs.time, the commit's time; zero when unknown
	Modified  bool      // vcs.modified: built from a work tree with changes
	GoVersion string
}

// ReadBuild returns the running binary's build (runtime/debug.ReadBuildInfo).
func ReadBuild() Build { return buildFrom(debug.ReadBuildInfo()) }

func buildFrom(info *debug.BuildInfo, ok bool) Build {
	b := Build{Version: "(devel)"}
	if !ok || info == nil {
		return b
	}
	b.GoVersion = info.GoVersion
	if v := info.Main.Version; v != "" {
		b.Version = v
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is how "auditq version" prints the build, e.g.
// "v1.2.0 (commit 4f2a9c1e0b7d, 2026-11-25T10:00:00Z, modified) go1.26.4".
func (b Build) String() string {
	var details []string
	if b.Revision != "" {
		details = append(details, "commit "+shortRev(b.Revision))
	}
	if !b.Time.IsZero() {
		details = append(details, b.Time.UTC().Format(time.RFC3339))
	}
	if b.Modified {
		details = append(details, "modified")
	}
	s := b.Version
	if len(details) > 0 {
		s += " (" + strings.Join(details, ", ") + ")"
	}
	if b.GoVersion != "" {
		s += " " + b.GoVersion
	}
	return s
}

// semVer is the pattern nats micro checks a service version against (the
// one semver.org suggests).
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// Semver returns the version as Semantic Versioning 2.0, as the micro
// service reports it: a tag or pseudo-version without its "v"; a
// development build as 0.0.0-devel, with the short commit (and "dirty"
// for a modified work tree) as build metadata, e.g.
// 0.0.0-devel+4f2a9c1e0b7d.dirty.
func (b Build) Semver() string {
	if v := strings.TrimPrefix(b.Version, "v"); v != b.Version && semVer.MatchString(v) {
		return v
	}
	var meta []string
	if r := shortRev(b.Revision); r != "" && semVer.MatchString("0.0.0+"+r) {
		meta = append(meta, r)
	}
	if b.Modified {
		meta = append(meta, "dirty")
	}
	if len(meta) == 0 {
		return "0.0.0-devel"
	}
	return "0.0.0-devel+" + strings.Join(meta, ".")
}

func shortRev(rev string) string { return rev[:min(len(rev), 12)] }
