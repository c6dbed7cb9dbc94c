package query

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/auditq/auditq/domain/audit"
)

// A flood of refusals is written as one event per identity, endpoint and
// rule, with its count; beyond MaxDenialKeys distinct ones, as one event
// more; what is not a refusal is not counted.
func TestDenialsAreBoundedPerWindow(t *testing.T) {
	rec := &recorder{}
	d := NewDenialAuditor(NewReadAuditor(rec, ReadAuditorConfig{Now: clock}), 0)
	bound := Requester{Verified: &Identity{Account: "acme", User: "r"}, Scope: audit.TenantScope{Bound: true, Tenant: "acme"}}
	refusal := audit.Forbidden("tenant", `this reader is bound to tenant "acme" and may not read tenant "globex"`)
	for range 5000 {
		d.Denied(bound, "audit.query", map[string]string{"tenant": "globex"}, refusal)
	}
	d.Denied(bound, "audit.query", nil, audit.Invalid("tenant", "bad")) // a 400: not a refusal
	for i := range MaxDenialKeys + 499 {
		who := Requester{Verified: &Identity{Account: "OTHER", User: fmt.Sprint("u", i)}}
		d.Denied(who, "audit.report", nil, audit.Forbidden("tenant", "no"))
	}
	d.Close(context.Background())
	if len(rec.events) != MaxDenialKeys+1 {
		t.Fatalf("%d events, want %d", len(rec.events), MaxDenialKeys+1)
	}
	byKey := map[string]audit.Event{}
	for _, e := range rec.events {
		byKey[e.Tenant+"/"+e.UserID+"/"+e.ResourceID] = e
		if e.Action != ActionDenied || e.Success {
			t.Fatalf("event %+v", e)
		}
	}
	flood := byKey["acme/nats:acme/r/audit.query"]
	var det struct{ Refused int }
	if err := json.Unmarshal(flood.Details, &det); err != nil || det.Refused != 5000 || flood.ErrorMessage != refusal.Error() {
		t.Fatalf("the flood's event: %+v (%v)", flood, err)
	}
	over := byKey["//(many)"]
	if err := json.Unmarshal(over.Details, &det); err != nil || det.Refused != 500 {
		t.Fatalf("the overflow event: %+v (%v)", over, err)
	}
	// A new window starts empty.
	d.flush(context.Background())
	if len(rec.events) != MaxDenialKeys+1 {
		t.Fatalf("a flush of nothing wrote %d events", len(rec.events)-MaxDenialKeys-1)
	}
}
