package format_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/streams/format"
)

// TestFormatsNameTheTenant: every format carries an event's tenant (OCSF
// as metadata.tenant_uid, the others in the event's view), and none for
// the default tenant.
func TestFormatsNameTheTenant(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	e := audit.SealedEvent{Event: audit.Event{ID: "e1", Action: "a", ResourceType: "r", ResourceID: "1",
		Success: true, OccurredAt: at, ReceivedAt: at}}
	for _, c := range []struct{ name, path string }{
		{format.OCSF, "metadata.tenant_uid"}, {format.Native, "tenant"}, {format.CloudEvents, "data.tenant"},
	} {
		enc, err := format.New(c.name, format.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tenant := range []string{"acme", ""} {
			e.Tenant = tenant
			b, err := enc(nil, &e, new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			var got any = m
			for _, k := range strings.Split(c.path, ".") {
				got = got.(map[string]any)[k]
			}
			if tenant == "" && got != nil || tenant != "" && got != tenant {
				t.Errorf("%s, tenant %q: %s is %v", c.name, tenant, c.path, got)
			}
		}
	}
}

// TestCloudEventsIDIsUniqueAcrossTenants: a receiver that drops repeats
// by source and id keeps acme's and globex's e1 apart (an id is unique
// within its tenant only), and the default tenant's id is the event id.
func TestCloudEventsIDIsUniqueAcrossTenants(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	enc, err := format.New(format.CloudEvents, format.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]string{"": "e1", "acme": "acme/e1", "globex": "globex/e1"} {
		b, err := enc(nil, &audit.SealedEvent{Event: audit.Event{ID: "e1", Action: "a", ResourceType: "r", ResourceID: "1",
			Success: true, OccurredAt: at, ReceivedAt: at, Tenant: tenant}}, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		var ce struct{ ID string }
		if err := json.Unmarshal(b, &ce); err != nil || ce.ID != want {
			t.Errorf("tenant %q: id %q, %v; want %q", tenant, ce.ID, err, want)
		}
	}
}
