package postgres

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// benchEvent returns event i of `auditq bench` (bench.eventJSON) as ingest
// decodes it: user i%1000, session i%20000, no personal details keys.
func benchEvent(b testing.TB, i int) audit.Event {
	b.Helper()
	msg := fmt.Appendf(nil, `{"id":"ev-%d","userId":"user-%d","action":"user.login","resourceType":"user","resourceId":"res-%d",`+
		`"details":{"field":"settings.name","old":"alpha","new":"beta","reason":"benchmark"},"ipAddress":"203.0.113.%d",`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","sessionId":"sess-%d","requestId":"req-%d",`+
		`"success":true,"timestamp":"2026-11-24T10:00:00Z"}`, i, i%1000, i%5000, i%250, i%20000, i)
	e, err := audit.DecodeEvent(msg, audit.Receipt{ReceivedAt: time.Date(2026, 11, 24, 10, 0, 1, 0, time.UTC)})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkProtectEvent measures the CPU of protecting one event with
// encryption, without the database: its user and session pseudonyms (as
// made for a user and a session id the writer does not remember) and the
// sealing of its personal fields under its subject key into a buffer
// kept between events (as a batch's events share one).
func BenchmarkProtectEvent(b *testing.B) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	aead, err := newAEAD(key)
	if err != nil {
		b.Fatal(err)
	}
	p := &Personal{mode: PersonalEncrypt, pseudoKey: key, pseudonymBytes: shortPseudonymBytes}
	e := benchEvent(b, 12)
	h := p.keyedHash("")
	var ad, buf []byte
	b.ReportAllocs()
	for b.Loop() {
		s := e
		s.Pseudonym, s.UserID = pseudonymOf(h, e.UserID), ""
		if buf, err = p.seal(buf[:0], &s, e.UserID, subjectKey{id: 7, aead: aead}, sessionPseudonymOf(h, e.SessionID), &ad); err != nil {
			b.Fatal(err)
		}
	}
}
