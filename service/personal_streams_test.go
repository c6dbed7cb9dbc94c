package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/ports/streams/streamstest"
	"github.com/auditq/auditq/service/servicetest"
)

// streamed is a delivered event in any format, reduced to what the
// personal data handling decides.
type streamed struct {
	ID, User, Pseudonym, IP, UserAgent, Session string
	Erased                                      bool
	Details                                     json.RawMessage
	LeafData                                    string
	BatchID                                     int64
	Leaf                                        int
}

// parseStreamed reads a delivered event of format f.
func parseStreamed(t *testing.T, f string, raw []byte) streamed {
	t.Helper()
	var out streamed
	fromView := func(v contract.EventView) {
		out.ID, out.Pseudonym, out.IP, out.UserAgent, out.Session, out.Erased, out.Details =
			v.ID, v.UserPseudonym, v.IPAddress, v.UserAgent, v.SessionID, v.Erased, v.Details
		if v.UserID != nil {
			out.User = *v.UserID
		}
	}
	var err error
	switch f {
	case "native":
		var v struct {
			contract.EventView
			Seal struct {
				BatchID  int64  `json:"batchId"`
				Leaf     int    `json:"leaf"`
				LeafData string `json:"leafData"`
			} `json:"seal"`
		}
		err = json.Unmarshal(raw, &v)
		fromView(v.EventView)
		out.BatchID, out.Leaf, out.LeafData = v.Seal.BatchID, v.Seal.Leaf, v.Seal.LeafData
	case "cloudevents":
		var v struct {
			Data     contract.EventView `json:"data"`
			BatchID  int64              `json:"auditqbatchid"`
			Leaf     int                `json:"auditqleaf"`
			LeafData string             `json:"auditqleafdata"`
		}
		err = json.Unmarshal(raw, &v)
		fromView(v.Data)
		out.BatchID, out.Leaf, out.LeafData = v.BatchID, v.Leaf, v.LeafData
	case "ocsf":
		var v struct {
			Metadata struct{ UID string }
			Actor    struct {
				User struct {
					UID    string `json:"uid"`
					UIDAlt string `json:"uid_alt"`
				} `json:"user"`
				Session *struct{ UID string } `json:"session"`
			}
			SrcEndpoint struct{ IP string } `json:"src_endpoint"`
			HTTPRequest *struct {
				UserAgent string `json:"user_agent"`
			} `json:"http_request"`
			Unmapped struct {
				Details json.RawMessage `json:"details"`
				Erased  bool            `json:"auditq_erased"`
				Seal    struct {
					BatchID  int64  `json:"batchId"`
					Leaf     int    `json:"leaf"`
					LeafData string `json:"leafData"`
				} `json:"auditq_seal"`
			}
		}
		err = json.Unmarshal(raw, &v)
		out.ID, out.User, out.Pseudonym, out.IP = v.Metadata.UID, v.Actor.User.UID, v.Actor.User.UIDAlt, v.SrcEndpoint.IP
		if v.Actor.Session != nil {
			out.Session = v.Actor.Session.UID
		}
		if v.HTTPRequest != nil {
			out.UserAgent = v.HTTPRequest.UserAgent
		}
		out.Details, out.Erased = v.Unmapped.Details, v.Unmapped.Erased
		out.BatchID, out.Leaf, out.LeafData = v.Unmapped.Seal.BatchID, v.Unmapped.Seal.Leaf, v.Unmapped.Seal.LeafData
	default:
		t.Fatalf("format %s", f)
	}
	if err != nil {
		t.Fatalf("%s event %s: %v", f, raw, err)
	}
	return out
}

// checkStreamed fails unless e, delivered for user, shows its personal
// fields revealed (erased false) or erased, and carries the leaf data of
// its stored form: hashed, it is the leaf sealed in the batch, it holds
// the pseudonym and the ciphertext and no personal field in clear, and
// its other fields are the delivered ones.
func checkStreamed(t *testing.T, db *bun.DB, f string, e streamed, user string, erased bool) {
	t.Helper()
	where := fmt.Sprintf("%s event %s of %s", f, e.ID, user)
	if erased {
		if !e.Erased || e.User != "[erased]" || e.IP != "" || e.UserAgent != "" || e.Session != "" ||
			strings.Contains(string(e.Details), "email") || !strings.Contains(string(e.Details), `"k":"v"`) {
			t.Fatalf("%s: want erased, got %+v (details %s)", where, e, e.Details)
		}
	} else if e.Erased || e.User != user || e.IP != "198.51.100.7" || e.UserAgent != "agent of "+user || e.Session != "session-"+user ||
		!strings.Contains(string(e.Details), `"email":"`+user+`@example.org"`) {
		t.Fatalf("%s: want revealed, got %+v (details %s)", where, e, e.Details)
	}
	if !strings.HasPrefix(e.Pseudonym, "psn_") {
		t.Fatalf("%s: pseudonym %q", where, e.Pseudonym)
	}
	var leaves []byte
	if err := db.QueryRowContext(context.Background(), `SELECT leaves FROM audit_batches WHERE id = ?`, e.BatchID).Scan(&leaves); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte{0}, e.LeafData...))
	if len(leaves) < 32*(e.Leaf+1) || !bytes.Equal(sum[:], leaves[32*e.Leaf:32*(e.Leaf+1)]) {
		t.Fatalf("%s: SHA-256(0x00 || leafData) is not leaf %d of batch %d; leafData %s", where, e.Leaf, e.BatchID, e.LeafData)
	}
	var stored map[string]any
	if err := json.Unmarshal([]byte(e.LeafData), &stored); err != nil {
		t.Fatalf("%s: leafData: %v", where, err)
	}
	if stored["id"] != e.ID || stored["userPseudonym"] != e.Pseudonym || stored["personal"] == nil || stored["userId"] != nil ||
		stored["ipAddress"] != nil || stored["userAgent"] != nil || !strings.HasPrefix(fmt.Sprint(stored["sessionId"]), "ssn_") ||
		strings.Contains(e.LeafData, user) {
		t.Fatalf("%s: leafData is not the stored form: %s", where, e.LeafData)
	}
}

// Log streams deliver what reads show: with personal data encrypted,
// every format (native, OCSF, CloudEvents) carries the decrypted personal
// fields and the leaf data of the stored form, which hashes to the sealed
// leaf. After an erasure, events of the erased subject that a stream had
// not delivered yet (its sink was down; a delivery encoded before the
// erasure and refused is encoded again) arrive erased, in every format,
// still matching their leaves; the other subject's stay revealed; what a
// stream delivered before the erasure stays as it was delivered (the
// documented limit); the subject's events after the erasure, under a new
// key, are revealed again.
func TestStreamsShowPersonalDataAsReadsDo(t *testing.T) {
	formats := []string{"native", "ocsf", "cloudevents"}
	hooks := map[string]*streamstest.Webhook{}
	var defs []map[string]any
	for _, f := range formats {
		h, err := streamstest.NewWebhook(hookSecret)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		h.KeepBodies()
		hooks[f] = h
		defs = append(defs, map[string]any{"name": "hook-" + f, "sink": "webhook", "format": f, "url": h.URL(), "secretEnv": "HOOK_SECRET"})
	}
	dir := t.TempDir()
	defs = append(defs, map[string]any{"name": "files", "sink": "file", "path": dir})
	env := personalEnv(t)
	env["HOOK_SECRET"] = hookSecret
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t, defs...)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())

	publish := func(ids ...string) {
		var msgs []*nats.Msg
		for _, id := range ids {
			user := map[byte]string{'a': "alice", 'b': "bob"}[id[0]]
			msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, personalEvent(id, user)))
		}
		servicetest.PublishAll(t, js, msgs)
	}
	// got returns the events with these ids that receiver delivered, by
	// id (the last delivery of each).
	got := func(f string, h *streamstest.Webhook, ids ...string) map[string]streamed {
		var rec []streamstest.Received
		if h != nil {
			rec = h.Events()
		} else {
			var err error
			if rec, _, err = streamstest.ReadFiles(dir, "files"); err != nil {
				t.Fatal(err)
			}
		}
		out := map[string]streamed{}
		for _, r := range rec {
			for _, id := range ids {
				if r.ID == id {
					out[id] = parseStreamed(t, f, r.Raw)
				}
			}
		}
		return out
	}
	waitAll := func(ids ...string) {
		servicetest.Eventually(t, time.Minute, func() (bool, string) {
			for _, f := range formats {
				if n := len(got(f, hooks[f], ids...)); n != len(ids) {
					return false, fmt.Sprintf("%s has %d of %v", f, n, ids)
				}
			}
			n := len(got("native", nil, ids...))
			return n == len(ids), fmt.Sprintf("files have %d of %v", n, ids)
		})
	}
	userOf := func(id string) string { return map[byte]string{'a': "alice", 'b': "bob"}[id[0]] }

	publish("a-0", "a-1", "b-0")
	waitAll("a-0", "a-1", "b-0")
	for _, f := range formats {
		for id, e := range got(f, hooks[f], "a-0", "a-1", "b-0") {
			checkStreamed(t, db, f, e, userOf(id), false)
		}
	}

	// The webhooks go down; their next events wait in the backlog, the
	// file stream delivers them before the erasure.
	for _, h := range hooks {
		h.SetDown(true)
	}
	publish("a-2", "b-2")
	servicetest.Eventually(t, time.Minute, func() (bool, string) {
		n := len(got("native", nil, "a-2", "b-2"))
		return n == 2, fmt.Sprintf("files have %d of a-2, b-2", n)
	})
	ask(t, nc, contract.SubjectAdminErase, `{"userId":"alice"}`).ok(t)
	for _, h := range hooks {
		h.SetDown(false)
	}
	publish("a-3")
	waitAll("a-2", "b-2", "a-3")
	for _, f := range formats {
		for id, e := range got(f, hooks[f], "a-0", "a-1", "b-0", "a-2", "b-2", "a-3") {
			// Delivered before the erasure: as delivered. After it: alice's
			// older events erased, her new one (a new key) revealed.
			checkStreamed(t, db, f, e, userOf(id), id == "a-2")
		}
	}
	for id, e := range got("native", nil, "a-0", "a-1", "a-2", "b-2", "a-3") {
		checkStreamed(t, db, "file", e, userOf(id), false)
	}
}
