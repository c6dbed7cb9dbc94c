package contract_test

// The Go client's validation (module github.com/auditq/auditq/client,
// which cannot import domain/audit and keeps its own copy of the rules)
// held to the service's decoder: for every input the decoder is tested
// with (the fuzz corpora of domain/audit and docs/examples), both accept
// it, or both reject it with the same error text.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/client"
	"github.com/auditq/auditq/domain/audit"
)

// standInID is the message id the service would fall back to for an
// event without "id": the client always gives one (Publish sets the
// event's id and its Nats-Msg-Id alike), so a missing id is never the
// client's error.
const standInID = "AUDIT:7"

func sameDecision(t *testing.T, label string, data []byte, service, clientErr error) bool {
	t.Helper()
	show := string(data)
	if len(show) > 200 {
		show = show[:200] + "..."
	}
	switch {
	case service == nil && clientErr == nil:
		return true
	case service == nil:
		t.Errorf("%s: the service accepts %q, the client rejects it: %v", label, show, clientErr)
	case clientErr == nil:
		t.Errorf("%s: the service rejects %q (%v), the client accepts it", label, show, service)
	case service.Error() != clientErr.Error():
		t.Errorf("%s %q:\nservice: %v\nclient:  %v", label, show, service, clientErr)
	default:
		return true
	}
	return false
}

func TestClientRulesMatchService(t *testing.T) {
	limit := bulkLimit(t)
	rules := client.Rules{MaxBulkEvents: limit}
	var events, bulks, rejected int
	checkEvent := func(label string, data []byte) {
		_, serr := audit.DecodeEvent(data, audit.Receipt{ReceivedAt: received, FallbackID: standInID})
		cerr := rules.CheckEvent(data, received)
		events++
		if serr != nil {
			rejected++
		}
		if sameDecision(t, label, data, serr, cerr) && cerr != nil {
			var v *client.ValidationError
			var sv *audit.ValidationError
			if !errors.As(cerr, &v) || !errors.As(serr, &sv) || v.Field != sv.Field || v.Rule != sv.Rule {
				t.Errorf("%s: client error %#v, service error %#v", label, cerr, serr)
			}
		}
	}
	checkBulk := func(label string, data []byte) {
		_, rej, serr := audit.DecodeBulk(data, limit, audit.Receipt{ReceivedAt: received, FallbackID: "bulk-x"})
		if serr == nil && len(rej) > 0 {
			serr = fmt.Errorf("%s", rej[0].Error)
		}
		bulks++
		sameDecision(t, label, data, serr, rules.CheckBulk(data, received))
	}
	for _, e := range readCorpus(t, "FuzzDecodeEvent") {
		checkEvent("FuzzDecodeEvent/"+e.file, e.data)
	}
	for _, e := range readCorpus(t, "FuzzDecodeBulk") {
		checkBulk("FuzzDecodeBulk/"+e.file, e.data)
		var env struct{ Events []json.RawMessage }
		if json.Unmarshal(e.data, &env) == nil {
			for i, item := range env.Events {
				checkEvent(fmt.Sprintf("FuzzDecodeBulk/%s events[%d]", e.file, i), item)
			}
		}
	}
	examples, _ := filepath.Glob(filepath.Join("..", "..", "docs", "examples", "*.json"))
	for _, p := range examples {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var items []json.RawMessage
		switch {
		case json.Unmarshal(b, &items) == nil:
			for i, item := range items {
				checkEvent(fmt.Sprintf("%s[%d]", p, i), item)
			}
		case strings.Contains(string(b), `"events"`):
			checkBulk(p, b)
		default:
			checkEvent(p, b)
		}
	}
	// The settings the service reads from AUDITQ_MAX_FUTURE_SKEW and
	// AUDITQ_BULK_MAX_EVENTS.
	late := []byte(`{"action":"a","resourceType":"r","resourceId":"1","timestamp":"` + received.Add(90*time.Second).Format(time.RFC3339Nano) + `"}`)
	_, serr := audit.DecodeEvent(late, audit.Receipt{ReceivedAt: received, FallbackID: standInID, FutureSkew: time.Minute})
	sameDecision(t, "skew 1m", late, serr, client.Rules{FutureSkew: time.Minute}.CheckEvent(late, received))
	if serr == nil {
		t.Error("an event 90 s ahead passed a skew of 1 minute")
	}
	three := []byte(`{"events":[` + strings.Repeat(`{"action":"a","resourceType":"r","resourceId":"1"},`, 2) + `{"action":"a","resourceType":"r","resourceId":"1"}]}`)
	_, _, serr = audit.DecodeBulk(three, 2, audit.Receipt{ReceivedAt: received, FallbackID: "bulk-x"})
	sameDecision(t, "bulk limit 2", three, serr, client.Rules{MaxBulkEvents: 2}.CheckBulk(three, received))
	if serr == nil {
		t.Error("three events passed a bulk limit of 2")
	}
	if events < 100 || rejected < 50 || bulks < 40 {
		t.Fatalf("compared %d events (%d rejected) and %d bulk messages: the corpora went missing?", events, rejected, bulks)
	}
	t.Logf("compared %d events (%d rejected by both) and %d bulk messages", events, rejected, bulks)
}
