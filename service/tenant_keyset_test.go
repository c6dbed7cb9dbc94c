package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// tiedPerTenant is how many events each tenant of
// TestOperatorPagesThroughTenantsSharingIDs publishes.
const tiedPerTenant = 30

// queryKeys runs an audit.query of filter (a JSON object's members) as
// rc, limit events a page, and returns the tenant/id of every event in
// the order of the pages, and the cursor after the first page.
func queryKeys(t *testing.T, rc *servicetest.RoleConn, filter string, limit int) ([]string, string) {
	t.Helper()
	var keys []string
	first, cursor := "", ""
	for range 200 {
		body := fmt.Sprintf(`{"limit":%d%s`, limit, filter)
		if cursor != "" {
			body += `,"cursor":"` + cursor + `"`
		}
		var p page
		ask(t, rc.NC, contract.SubjectQuery, body+`}`).into(t, &p)
		for _, e := range p.Events {
			keys = append(keys, e.Tenant+"/"+e.ID)
		}
		if p.NextCursor == nil {
			return keys, first
		}
		cursor = *p.NextCursor
		if first == "" {
			first = cursor
		}
	}
	t.Fatal("more than 200 pages")
	return nil, ""
}

// ndjsonKeys returns the tenant/id of every line of an NDJSON export.
func ndjsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var e struct{ ID, Tenant string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		keys = append(keys, e.Tenant+"/"+e.ID)
	}
	return keys
}

// checkOnce fails unless keys holds every key of want exactly once.
func checkOnce(t *testing.T, name string, keys []string, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
	}
	var missing, repeated []string
	for _, k := range want {
		if seen[k] == 0 {
			missing = append(missing, k)
		}
	}
	for k, n := range seen {
		if n > 1 {
			repeated = append(repeated, k)
		}
	}
	if len(missing) > 0 || len(repeated) > 0 || len(keys) != len(want) {
		slices.Sort(repeated)
		t.Errorf("%s: %d events, want %d; missing %v; repeated %v", name, len(keys), len(want), missing, repeated)
	}
}

// TestOperatorPagesThroughTenantsSharingIDs: acme, globex and the default
// tenant publish events of the same ids at the same microsecond; the
// operator's search over every tenant, one or two events a page, and its
// export over every tenant, two events a database page, return every
// event exactly once, and so do an export interrupted after its first
// chunk and resumed from its cursor, and an export resumed from the
// cursor of a search's first page, which falls between two tenants'
// events of one id.
func TestOperatorPagesThroughTenantsSharingIDs(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_EXPORT_PAGE_EVENTS"] = "2"
	env["AUDITQ_EXPORT_CHUNK_BYTES"] = "4096"
	env["AUDITQ_EXPORT_WINDOW"] = "1"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	// One connection per role (each connect costs the server a bcrypt
	// check); the operator's publishes into the default tenant.
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	var want []string
	for tenant, r := range map[string]servicetest.Role{"acme": acmePublisher, "globex": globexPublisher, "": tenantOperator} {
		nc := op.NC
		if tenant != "" {
			nc = servicetest.ConnectAs(t, svc.NATSURL(), r).NC
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*nats.Msg
		for i := range tiedPerTenant {
			id := fmt.Sprintf("tie-%02d", i)
			// EventJSON: the same timestamp for every event.
			msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, randomMsgID(tenant, id), servicetest.EventJSON(id, "tie.same")))
			want = append(want, tenant+"/"+id)
		}
		servicetest.PublishAll(t, js, msgs)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'tie.same'")
		return n == len(want), fmt.Sprintf("%d of %d events stored", n, len(want))
	})

	const filter = `,"action":"tie.same"`
	var firstCursor string
	for _, limit := range []int{1, 2} {
		keys, first := queryKeys(t, op, filter, limit)
		checkOnce(t, fmt.Sprintf("audit.query, pages of %d", limit), keys, want)
		if limit == 1 {
			firstCursor = first
		}
	}
	// The same with a prefix filter (another plan over the same index).
	keys, _ := queryKeys(t, op, `,"action":"tie.*"`, 2)
	checkOnce(t, "audit.query of tie.*, pages of 2", keys, want)

	req := contract.ExportRequest{Filter: contract.Filter{Action: "tie.same"}}
	var full bytes.Buffer
	sum, err := contract.ReceiveExport(context.Background(), op.NC, req, &full, contract.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Chunks < 3 {
		t.Fatalf("export of %d chunks: the test wants one interrupted after its first", sum.Chunks)
	}
	fullKeys := ndjsonKeys(t, full.Bytes())
	checkOnce(t, "audit.export", fullKeys, want)

	// Interrupted after its first chunk, resumed from its cursor.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &stopAfter{n: 1, stop: cancel}
	_, err = contract.ReceiveExport(ctx, op.NC, req, w, contract.ExportOptions{Timeout: 5 * time.Second})
	var xe *contract.ExportError
	if !errors.As(err, &xe) || xe.Cursor == "" {
		t.Fatalf("interrupted export: %v, want an ExportError with a cursor", err)
	}
	var rest bytes.Buffer
	resumed := req
	resumed.Cursor = xe.Cursor
	if _, err := contract.ReceiveExport(context.Background(), op.NC, resumed, &rest, contract.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	got := append(ndjsonKeys(t, w.Bytes()), ndjsonKeys(t, rest.Bytes())...)
	checkOnce(t, "audit.export interrupted and resumed", got, want)
	if !slices.Equal(got, fullKeys) {
		t.Errorf("interrupted and resumed export in another order than the whole one:\n%v\n%v", got, fullKeys)
	}

	// Resumed from the cursor after a search's first event: the rest.
	rest.Reset()
	resumed.Cursor = firstCursor
	if _, err := contract.ReceiveExport(context.Background(), op.NC, resumed, &rest, contract.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, "audit.export from the first search page's cursor", append(fullKeys[:1:1], ndjsonKeys(t, rest.Bytes())...), want)
}
