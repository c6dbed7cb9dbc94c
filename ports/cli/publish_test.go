package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A valid file becomes the messages the service expects: audit.log per
// event, or one audit.bulk message, each with a random Nats-Msg-Id of its
// own (a bulk job's starts with "bulk-"), never the event id: with
// tenants the stream's duplicate window spans every tenant.
func TestFileMessagesOfValidFiles(t *testing.T) {
	ev := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"action":"a","resourceType":"r","resourceId":1}`, id)
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, c := range []struct {
		body, subject string
		n             int
		prefix        string
	}{
		{"[" + ev("e1") + "," + ev("e2") + "]", "audit.log", 2, ""},
		{`{"action":"a","resourceType":"r","resourceId":"x"}`, "audit.log", 1, ""},
		{"\n" + ev("e3") + "\n", "audit.log", 1, ""},
		{`{"events":[` + ev("b1") + `]}`, "audit.bulk", 1, "bulk-"},
	} {
		msgs, err := fileMessages("f.json", []byte(c.body), PublishLimits{BulkMaxEvents: 10}, now)
		if err != nil || len(msgs) != c.n {
			t.Fatalf("%s: %v, %d messages", c.body, err, len(msgs))
		}
		for i, m := range msgs {
			id := m.Header.Get(nats.MsgIdHdr)
			if m.Subject != c.subject || !strings.HasPrefix(id, c.prefix) || len(id) != len(c.prefix)+32 || seen[id] {
				t.Errorf("%s: message %d on %s with id %q", c.body, i, m.Subject, id)
			}
			seen[id] = true
		}
	}
}

// The limits are the configured ones, and a refusal lists at most
// maxListedErrors events.
func TestFileMessagesLimitsAndListing(t *testing.T) {
	ok := `{"action":"a","resourceType":"r","resourceId":"1"}`
	_, err := fileMessages("b.json", []byte(`{"events":[`+ok+","+ok+","+ok+`]}`), PublishLimits{BulkMaxEvents: 2}, time.Now())
	if !errors.Is(err, ErrUsage) || err.Error() != "b.json: events: holds 3 events, more than the limit of 2" {
		t.Errorf("bulk limit: %v", err)
	}
	soon := fmt.Sprintf(`{"action":"a","resourceType":"r","resourceId":"1","timestamp":%q}`, time.Now().Add(10*time.Minute).Format(time.RFC3339))
	if _, err := fileMessages("s.json", []byte(soon), PublishLimits{FutureSkew: time.Minute}, time.Now()); !errors.Is(err, ErrUsage) ||
		!strings.HasPrefix(err.Error(), "s.json: timestamp: is more than 1m0s after") {
		t.Errorf("future skew: %v", err)
	}
	if _, err := fileMessages("s.json", []byte(soon), PublishLimits{}, time.Now()); err != nil {
		t.Errorf("default skew: %v", err)
	}
	bad := strings.Repeat(`{"action":"a"},`, 25)
	_, err = fileMessages("many.json", []byte("["+bad+ok+"]"), PublishLimits{}, time.Now())
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxListedErrors+2 || lines[maxListedErrors] != "... and 5 more invalid events" ||
		lines[len(lines)-1] != "nothing published to audit.log: 25 invalid events of 26" ||
		lines[0] != "many.json: event 0: resourceType: is required: a non-empty string" {
		t.Errorf("listing:\n%s", err)
	}
}
