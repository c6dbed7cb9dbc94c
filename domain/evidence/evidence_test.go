package evidence

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

func leavesN(n int) []Hash {
	out := make([]Hash, n)
	for i := range out {
		out[i] = LeafHash([]byte(fmt.Sprint(i)))
	}
	return out
}

// rfcRoot is RFC 6962's recursive definition, to check MerkleRoot against.
func rfcRoot(l []Hash) Hash {
	switch len(l) {
	case 0:
		return Sum(nil)
	case 1:
		return l[0]
	}
	k := splitPoint(len(l))
	return nodeHash(rfcRoot(l[:k]), rfcRoot(l[k:]))
}

func TestMerkleRootAndInclusionProofs(t *testing.T) {
	for n := 1; n <= 33; n++ {
		leaves := leavesN(n)
		root := MerkleRoot(leaves)
		if root != rfcRoot(leaves) {
			t.Fatalf("n=%d: root differs from RFC 6962's definition", n)
		}
		for i := range n {
			proof := InclusionProof(leaves, i)
			if !VerifyInclusion(leaves[i], i, n, proof, root) {
				t.Fatalf("n=%d i=%d: valid proof rejected", n, i)
			}
			if VerifyInclusion(leaves[(i+1)%n], i, n, proof, root) && n > 1 {
				t.Fatalf("n=%d i=%d: proof accepted for another leaf", n, i)
			}
			if n > 1 && VerifyInclusion(leaves[i], (i+1)%n, n, proof, root) {
				t.Fatalf("n=%d i=%d: proof accepted at another index", n, i)
			}
		}
	}
}

type vectorEvent struct {
	ID           string          `json:"id"`
	UserID       string          `json:"userId,omitempty"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resourceType"`
	ResourceID   string          `json:"resourceId"`
	Details      json.RawMessage `json:"details,omitempty"` // as PostgreSQL returns the jsonb
	IPAddress    string          `json:"ipAddress,omitempty"`
	UserAgent    string          `json:"userAgent,omitempty"`
	SessionID    string          `json:"sessionId,omitempty"`
	RequestID    string          `json:"requestId,omitempty"`
	Success      bool            `json:"success"`
	ErrorMessage string          `json:"errorMessage,omitempty"`
	OccurredAt   time.Time       `json:"occurredAt"`
	ReceivedAt   time.Time       `json:"receivedAt"`
}

func (v vectorEvent) event() audit.Event {
	return audit.Event{ID: v.ID, UserID: v.UserID, Action: v.Action, ResourceType: v.ResourceType, ResourceID: v.ResourceID,
		Details: v.Details, IPAddress: v.IPAddress, UserAgent: v.UserAgent, SessionID: v.SessionID, RequestID: v.RequestID,
		Success: v.Success, ErrorMessage: v.ErrorMessage, OccurredAt: v.OccurredAt, ReceivedAt: v.ReceivedAt}
}

type vectors struct {
	Comment string `json:"comment"`
	Events  []struct {
		Input     vectorEvent `json:"input"`
		Canonical string      `json:"canonical"`
		LeafHash  Hash        `json:"leafHash"`
	} `json:"events"`
	Batch struct {
		Seq       int64     `json:"seq"`
		ID        int64     `json:"id"`
		Prev      Hash      `json:"prev"`
		SealedAt  time.Time `json:"sealedAt"`
		Leaves    []Hash    `json:"leaves"`
		Root      Hash      `json:"root"`
		Text      string    `json:"text"`
		Hash      Hash      `json:"hash"`
		Signature []byte    `json:"signature"` // by the checkpoint's key, over "auditq batch body v1\n" + the last four lines of text
	} `json:"batch"`
	Checkpoint struct {
		PrivateKeySeed string     `json:"privateKeySeed"`
		PublicKey      string     `json:"publicKey"`
		Checkpoint     Checkpoint `json:"checkpoint"`
		Text           string     `json:"text"`
		Hash           Hash       `json:"hash"`
	} `json:"checkpoint"`
}

func vectorInputs() []vectorEvent {
	at := time.Date(2026, 11, 24, 13, 45, 0, 123456000, time.UTC)
	return []vectorEvent{
		{ID: "evt-1", UserID: "u1", Action: "guild.update", ResourceType: "guild", ResourceID: "g1",
			Details:   json.RawMessage(`{"n": 1.50, "changed": ["name"], "nested": {"z": null, "a": 1e21, "é": "\u00e9\t\""}}`),
			IPAddress: "2001:db8::1", UserAgent: "Mozilla/5.0", SessionID: "s1", RequestID: "r1", Success: false,
			ErrorMessage: "denied\nby policy", OccurredAt: at, ReceivedAt: at.Add(time.Second)},
		{ID: "AUDIT:42", Action: "system.start", ResourceType: "service", ResourceID: "0", Success: true,
			OccurredAt: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), ReceivedAt: at},
		{ID: "e-ipv4", UserID: "42", Action: "user.login", ResourceType: "user", ResourceID: "42",
			Details: json.RawMessage(`{}`), IPAddress: "::ffff:192.0.2.1", Success: true, OccurredAt: at, ReceivedAt: at},
		{ID: "e-\u20ac-😀", UserID: "ü", Action: "a\u007fb", ResourceType: "t", ResourceID: "r",
			Details: json.RawMessage(`{"\ud83d\ude00": 0.000001, "\ufb33": -0, "\r": 1E-7}`), IPAddress: "192.0.2.1", Success: true, OccurredAt: at, ReceivedAt: at},
	}
}

func buildVectors(t *testing.T) vectors {
	var v vectors
	v.Comment = "Test vectors of auditq's tamper evidence; see docs/tamper-evidence.md. Event inputs are stored rows (details as PostgreSQL prints jsonb); hashes are hex, the signature base64."
	var h EventHasher
	for _, in := range vectorInputs() {
		leaf, canon, err := h.Leaf(in.event())
		if err != nil {
			t.Fatal(err)
		}
		v.Events = append(v.Events, struct {
			Input     vectorEvent `json:"input"`
			Canonical string      `json:"canonical"`
			LeafHash  Hash        `json:"leafHash"`
		}{in, string(canon), leaf})
	}
	b := &v.Batch
	b.Seq, b.ID, b.SealedAt = 7, 1234, time.Date(2026, 11, 24, 13, 45, 1, 5000, time.UTC)
	b.Prev = Sum([]byte("previous batch"))
	for _, e := range v.Events {
		b.Leaves = append(b.Leaves, e.LeafHash)
	}
	b.Leaves = append(b.Leaves, ZeroHash) // a duplicate in the write stored nothing
	b.Root = MerkleRoot(b.Leaves)
	body := BatchBody(b.ID, b.SealedAt, len(b.Leaves), b.Root)
	b.Text = fmt.Sprintf("%sseq %d\nprev %s\n%s", BatchHeader, b.Seq, b.Prev, body)
	b.Hash = BatchHash(b.Seq, b.Prev, body)

	seed := Sum([]byte("auditq test vector key"))
	signer := NewSigner(ed25519.NewKeyFromSeed(seed[:]))
	b.Signature = signer.SignBatch(body)
	c := Checkpoint{Seq: 3, Prev: Sum([]byte("previous checkpoint")), Time: time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC),
		Reason: "periodic", BatchSeq: b.Seq, BatchHash: b.Hash, RangeFrom: 6,
		RangeRoot: MerkleRoot([]Hash{b.Prev, b.Hash}), DeletionSeq: 0}
	signer.SignCheckpoint(&c)
	v.Checkpoint.PrivateKeySeed = hex.EncodeToString(seed[:])
	v.Checkpoint.PublicKey = hex.EncodeToString(signer.PublicKey())
	v.Checkpoint.Checkpoint = c
	v.Checkpoint.Text = string(c.Text())
	v.Checkpoint.Hash = c.Hash()
	return v
}

// TestVectors checks the published test vectors (testdata/vectors.json)
// against the implementation, so another language can rely on them. Run
// with -update after a deliberate format change.
func TestVectors(t *testing.T) {
	got := buildVectors(t)
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/vectors.json", append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var want vectors
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var h EventHasher
	for i, e := range want.Events {
		leaf, canon, err := h.Leaf(e.Input.event())
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(canon) != e.Canonical || leaf != e.LeafHash {
			t.Errorf("event %d:\n canonical %s\n want      %s\n leaf %s want %s", i, canon, e.Canonical, leaf, e.LeafHash)
		}
		if LeafHash([]byte(e.Canonical)) != e.LeafHash {
			t.Errorf("event %d: leaf hash is not SHA-256(0x00 || canonical)", i)
		}
	}
	b := want.Batch
	if MerkleRoot(b.Leaves) != b.Root {
		t.Error("batch root")
	}
	if Sum([]byte(b.Text)) != b.Hash || BatchHash(b.Seq, b.Prev, BatchBody(b.ID, b.SealedAt, len(b.Leaves), b.Root)) != b.Hash {
		t.Error("batch hash")
	}
	c := want.Checkpoint
	pub, _ := hex.DecodeString(c.PublicKey)
	if string(c.Checkpoint.Text()) != c.Text || c.Checkpoint.Hash() != c.Hash || Sum([]byte(c.Text)) != c.Hash {
		t.Errorf("checkpoint text or hash:\n%s", c.Checkpoint.Text())
	}
	if err := VerifyBatch(KeyRing{pub}, BatchInfo{ID: b.ID, SealedAt: b.SealedAt, LeafCount: len(b.Leaves), Root: b.Root, Signature: b.Signature}); err != nil {
		t.Errorf("batch signature: %v", err)
	}
	if err := VerifyCheckpoint(KeyRing{pub}, c.Checkpoint); err != nil {
		t.Errorf("checkpoint signature: %v", err)
	}
	c.Checkpoint.BatchSeq++
	if VerifyCheckpoint(KeyRing{pub}, c.Checkpoint) == nil {
		t.Error("an altered checkpoint verified")
	}
}

func TestCanonicalEventIgnoresStorageFormatting(t *testing.T) {
	in := vectorInputs()[0].event()
	a, _, err := new(EventHasher).Leaf(in)
	if err != nil {
		t.Fatal(err)
	}
	in.Details = json.RawMessage(`{"nested":{"é":"é\t\"","a":1000000000000000000000,"z":null},"changed":["name"],"n":1.5}`)
	in.OccurredAt = in.OccurredAt.In(time.FixedZone("x", 3600))
	b, _, _ := new(EventHasher).Leaf(in)
	if a != b {
		t.Fatal("the same event stored differently hashed differently")
	}
	for _, change := range []func(e *audit.Event){
		func(e *audit.Event) { e.Action += "x" },
		func(e *audit.Event) { e.Details = json.RawMessage(`{"n":1.5}`) },
		func(e *audit.Event) { e.OccurredAt = e.OccurredAt.Add(time.Microsecond) },
		func(e *audit.Event) { e.Success = !e.Success },
		func(e *audit.Event) { e.UserID = "" },
		func(e *audit.Event) { e.IPAddress = "2001:db8::2" },
	} {
		e := vectorInputs()[0].event()
		change(&e)
		if c, _, _ := new(EventHasher).Leaf(e); c == a {
			t.Errorf("a changed field kept the hash: %+v", e)
		}
	}
}

// The stored form of an event with personal data encrypted
// (docs/personal-data.md): personal (standard base64) between occurredAt
// and receivedAt, userPseudonym last, in JCS order.
func TestCanonicalEventOfEncryptedPersonalData(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e := audit.Event{ID: "e1", Action: "user.login", ResourceType: "user", ResourceID: "r", Success: true,
		OccurredAt: at, ReceivedAt: at, Pseudonym: "psn_x", Personal: []byte{1, 2, 3, 250}}
	got, err := AppendCanonicalEvent(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"action":"user.login","id":"e1","occurredAt":"2026-11-24T10:00:00.000000Z","personal":"AQID+g==",` +
		`"receivedAt":"2026-11-24T10:00:00.000000Z","resourceId":"r","resourceType":"user","success":true,"userPseudonym":"psn_x"}`
	if string(got) != want {
		t.Fatalf("canonical\n got %s\nwant %s", got, want)
	}
	e.Personal[0] ^= 1
	if again, _ := AppendCanonicalEvent(nil, e); string(again) == want {
		t.Fatal("a changed ciphertext kept its encoding")
	}
}
