// Package grafana_test checks the Grafana dashboard auditq.json against a
// running service, so that the dashboard cannot drift from the code.
package grafana_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/auditq/auditq/service/servicetest"
)

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a row's panels
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Query   string `json:"query"`
			Current struct {
				Value string `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	// Grouping lists and range selectors hold label names and durations,
	// not metric names; label matchers and strings hold label values.
	groupingRe = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	rangeRe    = regexp.MustCompile(`\[[^\]]*\]`)
	matcherRe  = regexp.MustCompile(`\{[^}]*\}`)
	stringRe   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	identRe    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords   = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := stringRe.ReplaceAllString(expr, `""`)
	e = matcherRe.ReplaceAllString(e, " ")
	e = rangeRe.ReplaceAllString(e, " ")
	e = groupingRe.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range identRe.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // the exponent or suffix of a number
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or aggregation
		}
		if slices.Contains(keywords, strings.ToLower(name)) {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNamesOfExpressions(t *testing.T) {
	got := metricNames(`time() - max(auditq_a_seconds > 0) + histogram_quantile(0.99, sum by (le, subject) (rate(auditq_b_bucket{code!="200",x=~"a b"}[$__rate_interval]))) and on (instance) topk(1, c_total) * 1e3`)
	if want := []string{"auditq_a_seconds", "auditq_b_bucket", "c_total"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// loadDashboard reads auditq.json and returns it with every panel that is
// not a row.
func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	data, err := os.ReadFile("auditq.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("auditq.json: %v", err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			all = append(all, p)
		}
	}
	walk(d.Panels)
	return d, all
}

// The dashboard is well-formed and selects the provisioned data source.
func TestDashboardIsProvisionable(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.UID != "auditq" || d.Title == "" || len(panels) == 0 {
		t.Fatalf("uid %q, title %q, %d panels", d.UID, d.Title, len(panels))
	}
	ds, err := os.ReadFile("provisioning/datasources/auditq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+uid:\s*(\S+)\s*$`).FindSubmatch(ds)
	if m == nil {
		t.Fatal("provisioning/datasources/auditq.yaml names no uid")
	}
	uid := string(m[1])
	if len(d.Templating.List) != 1 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Type != "datasource" ||
		d.Templating.List[0].Query != "prometheus" || d.Templating.List[0].Current.Value != uid {
		t.Errorf("the datasource variable %+v does not default to the provisioned data source %q", d.Templating.List, uid)
	}
	ids := map[int]bool{}
	for _, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want prometheus ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	dp, err := os.ReadFile("provisioning/dashboards/auditq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dp), "type: file") || !strings.Contains(string(dp), "path: ") {
		t.Error("provisioning/dashboards/auditq.yaml is no file provider with a path")
	}
}

// Every metric the dashboard's queries read is on the /metrics of a
// freshly started service, and every auditq metric there has a panel: a
// renamed, removed or added metric fails here until the dashboard follows.
func TestDashboardMetricsExistOnARunningService(t *testing.T) {
	_, panels := loadDashboard(t)
	used := map[string][]string{} // metric -> panels
	for _, p := range panels {
		for _, tg := range p.Targets {
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				used[n] = append(used[n], p.Title)
			}
		}
	}

	env := servicetest.Env(t)
	// One log stream, so that the auditq_stream_* series exist.
	streams := filepath.Join(t.TempDir(), "streams.json")
	if err := os.WriteFile(streams, []byte(`{"streams":[{"name":"files","sink":"file","path":"`+t.TempDir()+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env["AUDITQ_STREAMS_FILE"] = streams
	svc := servicetest.Start(t, env)
	resp, err := http.Get("http://" + svc.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]bool{} // sample names with at least one series
	families := map[string]string{}
	for _, l := range strings.Split(string(body), "\n") {
		if f, ok := strings.CutPrefix(l, "# TYPE "); ok {
			if name, typ, ok := strings.Cut(f, " "); ok {
				families[name] = typ
			}
			continue
		}
		if l == "" || l[0] == '#' {
			continue
		}
		samples[identRe.FindString(l)] = true
	}
	var missing []string
	for n, where := range used {
		if !samples[n] {
			missing = append(missing, n+" (panels: "+strings.Join(where, ", ")+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("the dashboard reads %s, which a running service does not expose", m)
	}
	for fam, typ := range families {
		if !strings.HasPrefix(fam, "auditq_") {
			continue
		}
		refs := []string{fam}
		if typ == "histogram" {
			refs = []string{fam + "_bucket", fam + "_count", fam + "_sum"}
		}
		if !slices.ContainsFunc(refs, func(r string) bool { return used[r] != nil }) {
			t.Errorf("metric %s (%s) has no panel on the dashboard", fam, typ)
		}
	}
	if len(families) == 0 {
		t.Fatal("no metric families on /metrics")
	}
}
