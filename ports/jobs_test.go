package ports

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app/query"
)

// Who started a job: believed only with a trusted identity, and a
// schedule's firing is the service's own.
func TestJobRequester(t *testing.T) {
	operator := query.Requester{Verified: &query.Identity{Account: "OPERATORS", User: "operator", Name: "cli"}, Claimed: "cli:alice"}
	header := string(encodeOrigin(operator))
	trusted := Identity{Trusted: true, Account: "AUDITQ"}
	cases := []struct {
		name      string
		meta      map[string]string
		id        Identity
		userID    string
		claimed   string
		verifiedN string // the verified client name
	}{
		{"started through a request", map[string]string{HeaderStartedBy: header}, trusted, "nats:OPERATORS/operator", "cli:alice", "cli"},
		{"fired by a schedule", map[string]string{metaScheduler: "audit.schedule.cleanup"}, trusted, "nats:AUDITQ/auditq", "", "audit.schedule.cleanup"},
		{"from within the service's account", nil, trusted, "", "", ""},
		{"a header that is not ours", map[string]string{HeaderStartedBy: "someone"}, trusted, "", "someone", ""},
		{"untrusted: the header is a claim", map[string]string{HeaderStartedBy: header}, Identity{}, "", header, ""},
		{"untrusted: a schedule is a claim", map[string]string{metaScheduler: "audit.schedule.cleanup"}, Identity{}, "", "schedule audit.schedule.cleanup", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := message.NewMessage("1", nil)
			for k, v := range c.meta {
				msg.Metadata.Set(k, v)
			}
			who := jobRequester(msg, c.id)
			if got := who.Verified.UserID(); got != c.userID {
				t.Errorf("userId %q, want %q", got, c.userID)
			}
			if who.Claimed != c.claimed {
				t.Errorf("claimed %q, want %q", who.Claimed, c.claimed)
			}
			name := ""
			if who.Verified != nil {
				name = who.Verified.Name
			}
			if name != c.verifiedN {
				t.Errorf("verified name %q, want %q", name, c.verifiedN)
			}
			if !c.id.Trusted && who.Verified != nil {
				t.Errorf("verified %+v without trust", who.Verified)
			}
		})
	}
}
