package ports

import (
	"encoding/json"
	"log/slog"
	"runtime/debug"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/app"
)

func TestBuildVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	const rev = "4f2a9c1e0b7d5a3c2e1f0a9b8c7d6e5f4a3b2c1d"
	cases := []struct {
		name     string
		info     *debug.BuildInfo
		str, sem string
	}{
		{"no build info", nil, "(devel)", "0.0.0-devel"},
		{"go test", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "(devel)"}}, "(devel) go1.26.4", "0.0.0-devel"},
		{"empty version", &debug.BuildInfo{Main: debug.Module{Version: ""}}, "(devel)", "0.0.0-devel"},
		{"tag", &debug.BuildInfo{GoVersion: "go1.26.4", Main: debug.Module{Version: "v1.2.0"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-11-25T10:00:00Z", "vcs.modified", "false")},
			"v1.2.0 (commit 4f2a9c1e0b7d, 2026-11-25T10:00:00Z) go1.26.4", "1.2.0"},
		{"pseudo-version, dirty", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261125100000-4f2a9c1e0b7d+dirty"},
			Settings: vcs("vcs.revision", rev, "vcs.modified", "true")},
			"v0.0.0-20261125100000-4f2a9c1e0b7d+dirty (commit 4f2a9c1e0b7d, modified)", "0.0.0-20261125100000-4f2a9c1e0b7d+dirty"},
		{"devel from a checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-11-25T10:00:00Z", "vcs.modified", "true")},
			"(devel) (commit 4f2a9c1e0b7d, 2026-11-25T10:00:00Z, modified)", "0.0.0-devel+4f2a9c1e0b7d.dirty"},
		{"devel, clean", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", rev)},
			"(devel) (commit 4f2a9c1e0b7d)", "0.0.0-devel+4f2a9c1e0b7d"},
		{"odd revision", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "a_b")},
			"(devel) (commit a_b)", "0.0.0-devel"},
		{"not semver", &debug.BuildInfo{Main: debug.Module{Version: "v1.2"}}, "v1.2", "0.0.0-devel"},
	}
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.ClientURL())
	for _, c := range cases {
		b := buildFrom(c.info, c.info != nil)
		if got := b.String(); got != c.str {
			t.Errorf("%s: String() = %q, want %q", c.name, got, c.str)
		}
		if got := b.Semver(); got != c.sem {
			t.Errorf("%s: Semver() = %q, want %q", c.name, got, c.sem)
		}
		// What nats micro accepts.
		svc, err := micro.AddService(nc, micro.Config{Name: "versiontest", Version: b.Semver()})
		if err != nil {
			t.Errorf("%s: micro refuses version %q: %v", c.name, b.Semver(), err)
			continue
		}
		_ = svc.Stop()
	}
	if b := ReadBuild(); b.Version == "" || b.GoVersion == "" {
		t.Errorf("ReadBuild() = %+v", b)
	}
}

// The micro service reports the binary's version.
func TestRequestsReportTheBuildVersion(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.ClientURL())
	r, err := NewRequests(nc, RequestsConfig{Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)}, app.Application{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	client, _ := natstest.Connect(t, srv.ClientURL())
	reply, err := client.Request("$SRV.INFO."+ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != ReadBuild().Semver() || info.Version == "1.0.0" {
		t.Fatalf("service version %q, want %q", info.Version, ReadBuild().Semver())
	}
}
