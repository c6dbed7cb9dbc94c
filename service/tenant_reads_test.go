package service_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"slices"
	"strings"
	"testing"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// readRecord is an event recording a read, as a reader gets it.
type readRecord struct {
	ID      string `json:"id"`
	UserID  string `json:"userId"`
	Tenant  string `json:"tenant"`
	Details struct {
		Request   map[string]any `json:"request"`
		Requester struct {
			Verified        bool           `json:"verified"`
			Account         string         `json:"account"`
			User            string         `json:"user"`
			NatsRequestInfo map[string]any `json:"natsRequestInfo"`
		} `json:"requester"`
	} `json:"details"`
}

// readsOf asks rc for the recorded audit.query reads, by the userId each
// read asked for.
func readsOf(t *testing.T, rc *servicetest.RoleConn) map[string]readRecord {
	t.Helper()
	var p struct{ Events []readRecord }
	ask(t, rc.NC, contract.SubjectQuery, `{"action":"audit.query","limit":1000}`).into(t, &p)
	out := map[string]readRecord{}
	for _, e := range p.Events {
		if probe, ok := e.Details.Request["userId"].(string); ok {
			out[probe] = e
		}
	}
	return out
}

// TestTenantReadsAreRecordedInTheirTenant: a bound reader's read is
// recorded in its own tenant, where its tenant's reader sees it and the
// other tenant's does not; an operator's read of one tenant is recorded in
// that tenant (with the operator's verified identity, without the server's
// details of its connection), a read of every tenant in the default one.
func TestTenantReadsAreRecordedInTheirTenant(t *testing.T) {
	env := tenantsEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	acme := servicetest.ConnectAs(t, svc.NATSURL(), acmeReader)
	globex := servicetest.ConnectAs(t, svc.NATSURL(), globexReader)
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	ask(t, acme.NC, contract.SubjectQuery, `{"userId":"probe-acme"}`).ok(t)
	ask(t, globex.NC, contract.SubjectQuery, `{"userId":"probe-globex"}`).ok(t)
	ask(t, op.NC, contract.SubjectQuery, `{"userId":"probe-op-acme","tenant":"acme"}`).ok(t)
	ask(t, op.NC, contract.SubjectQuery, `{"userId":"probe-op-all"}`).ok(t)
	ask(t, op.NC, contract.SubjectQuery, `{"userId":"probe-op-default","tenant":""}`).ok(t)

	for probe, tenant := range map[string]string{"probe-acme": "acme", "probe-globex": "globex", "probe-op-acme": "acme", "probe-op-all": "", "probe-op-default": ""} {
		if n := servicetest.CountRows(t, db, "action = 'audit.query' AND details->'request'->>'userId' = ? AND tenant = ?", probe, tenant); n != 1 {
			t.Errorf("read %s: %d rows in tenant %q, want 1", probe, n, tenant)
		}
	}

	// Each tenant's reader sees the reads of its own trail only.
	for _, c := range []struct {
		rc   *servicetest.RoleConn
		want []string
	}{{acme, []string{"probe-acme", "probe-op-acme"}}, {globex, []string{"probe-globex"}}} {
		got := readsOf(t, c.rc)
		if len(got) != len(c.want) {
			t.Errorf("reads visible: %v, want %v", keys(got), c.want)
		}
		for _, probe := range c.want {
			if _, ok := got[probe]; !ok {
				t.Errorf("read %s not visible to its tenant (sees %v)", probe, keys(got))
			}
		}
	}
	own := readsOf(t, acme)["probe-acme"]
	if r := own.Details.Requester; own.Tenant != "acme" || r.Account != "acme" || r.User != acmeReader.User || r.NatsRequestInfo == nil {
		t.Errorf("acme's own read: %+v", own)
	}
	byOp := readsOf(t, acme)["probe-op-acme"]
	if r := byOp.Details.Requester; !r.Verified || r.Account != "OPERATORS" || r.User != tenantOperator.User || byOp.UserID != "nats:OPERATORS/operator" {
		t.Errorf("the operator's read of acme, as acme sees it: %+v", byOp)
	}
	if byOp.Details.Requester.NatsRequestInfo != nil {
		t.Errorf("acme sees the server's details of the operator's connection: %v", byOp.Details.Requester.NatsRequestInfo)
	}
	// The operator sees them all, the default tenant's reads with the
	// server's details.
	all := readsOf(t, op)
	for _, probe := range []string{"probe-acme", "probe-globex", "probe-op-acme", "probe-op-all"} {
		if _, ok := all[probe]; !ok {
			t.Errorf("the operator does not see read %s", probe)
		}
	}
	if all["probe-op-all"].Details.Requester.NatsRequestInfo == nil {
		t.Errorf("the operator's read of every tenant lacks natsRequestInfo: %+v", all["probe-op-all"])
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTenantCSVExportHasTheTenantColumn: with tenants on, a CSV export
// ends each record with the event's tenant; the operator's export of
// every tenant (over NATS and with auditq export) equals SQL row by row,
// tenant included, and a tenant reader's holds its own rows only. Without
// tenants the column is absent (TestExportEqualsSQLInBothFormats).
func TestTenantCSVExportHasTheTenantColumn(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_EXPORT_PAGE_EVENTS"], env["AUDITQ_EXPORT_CHUNK_BYTES"] = "97", "4096"
	env["AUDITQ_NATS_INBOX_PREFIX"] = tenantOperator.Inbox
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	events := exportEvents(600)
	tenants := []string{"acme", "globex", ""}
	for i := range events {
		events[i].Tenant = tenants[i%3]
	}
	seed(t, db, events...)
	want := sqlRows(t, db, exportFrom, exportTo)
	tenantOf := map[string]string{}
	var rows []struct {
		ID     string `bun:"id"`
		Tenant string `bun:"tenant"`
	}
	if err := db.NewSelect().Table("audit_logs").Column("id", "tenant").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		tenantOf[r.ID] = r.Tenant
	}
	header := strings.Join(append(slices.Clip(contract.CSVColumns), contract.CSVTenantColumn), ",")
	check := func(name string, out []byte, tenant *string) {
		t.Helper()
		records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var rows []sqlRow
		for _, w := range want {
			if tenant == nil || tenantOf[w.ID] == *tenant {
				rows = append(rows, w)
			}
		}
		if len(records) == 0 || strings.Join(records[0], ",") != header || len(records) != len(rows)+1 || len(rows) < 100 {
			t.Fatalf("%s: header %v, %d records; SQL %d rows", name, records[0], len(records), len(rows))
		}
		for i, rec := range records[1:] {
			for j := range rec {
				rec[j] = contract.UnguardCSVCell(rec[j])
			}
			w := append(rows[i].csvRow(), tenantOf[rows[i].ID])
			w[11] = strings.ReplaceAll(w[11], "\r\n", "\n")
			if !sameJSON(rec[5], w[5]) {
				t.Fatalf("%s row %d details %s, SQL %s", name, i, rec[5], w[5])
			}
			rec[5] = w[5]
			if strings.Join(rec, "\x00") != strings.Join(w, "\x00") {
				t.Fatalf("%s row %d:\n%q\nSQL\n%q", name, i, rec, w)
			}
		}
	}
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	out, _ := export(t, op.NC, contract.ExportRequest{Filter: exportFilter(), Format: "csv"})
	check("operator", out, nil)
	acme := servicetest.ConnectAs(t, svc.NATSURL(), acmeReader)
	out, _ = export(t, acme.NC, contract.ExportRequest{Filter: exportFilter(), Format: "csv"})
	own := "acme"
	check("acme-reader", out, &own)
	cli, err := runCLI(t, env, svc, "export", "--format", "csv", "--action", "user.*", "--from", exportFrom, "--to", exportTo)
	if err != nil {
		t.Fatalf("auditq export: %v\n%s", err, cli)
	}
	check("auditq export", []byte(cli), nil)
}

// TestRefusedReadsAreRecordedInTheAskersTenant: acme's reader asks for
// globex's events 40 times and globex's report once; each kind of refusal
// is one event in acme's tenant with its count (written at the latest when
// the service stops), which acme's reader sees after a restart and
// globex's does not.
func TestRefusedReadsAreRecordedInTheAskersTenant(t *testing.T) {
	env := tenantsEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	acme := servicetest.ConnectAs(t, svc.NATSURL(), acmeReader)
	for range 40 {
		ask(t, acme.NC, contract.SubjectQuery, `{"tenant":"globex"}`).refused(t, "403", "tenant")
	}
	ask(t, acme.NC, contract.SubjectReport, `{"reportType":"daily","date":"2026-11-24","tenant":"globex"}`).refused(t, "403", "tenant")
	ask(t, acme.NC, contract.SubjectQuery, `{"tenant":"no.such"}`).refused(t, "400", "tenant") // invalid, not refused: not counted
	_ = svc.Close()

	var rows []struct {
		Tenant       string `bun:"tenant"`
		UserID       string `bun:"user_id"`
		ResourceID   string `bun:"resource_id"`
		Success      bool   `bun:"success"`
		ErrorMessage string `bun:"error_message"`
		Refused      int    `bun:"refused"`
	}
	if err := db.NewSelect().Table("audit_logs").
		ColumnExpr("tenant, user_id, resource_id, success, error_message, (details->>'refused')::int AS refused").
		Where("action = 'audit.denied'").Order("resource_id").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ResourceID != contract.SubjectQuery || rows[0].Refused != 40 || rows[1].ResourceID != contract.SubjectReport || rows[1].Refused != 1 {
		t.Fatalf("denied events %+v, want audit.query refused 40 times and audit.report once", rows)
	}
	for _, r := range rows {
		if r.Tenant != "acme" || r.UserID != "nats:acme/acme-reader" || r.Success || !strings.Contains(r.ErrorMessage, `may not read tenant "globex"`) {
			t.Errorf("denied event %+v", r)
		}
	}

	svc = servicetest.Start(t, env)
	for _, c := range []struct {
		r    servicetest.Role
		want int
	}{{acmeReader, 2}, {globexReader, 0}} {
		rc := servicetest.ConnectAs(t, svc.NATSURL(), c.r)
		var p struct{ Events []readRecord }
		ask(t, rc.NC, contract.SubjectQuery, `{"action":"audit.denied"}`).into(t, &p)
		if len(p.Events) != c.want {
			t.Errorf("%s sees %d denied events, want %d", c.r.Name, len(p.Events), c.want)
		}
	}
}
