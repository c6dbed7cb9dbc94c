package contract

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// AppendJSON writes exactly what encoding/json writes for an EventView:
// for hand-picked awkward values and for random strings of every byte.
func TestAppendJSONEqualsEncodingJSON(t *testing.T) {
	user := "u<1>&\u2028"
	views := []EventView{
		{ID: "a", Action: "x", ResourceType: "t", ResourceID: "0", Timestamp: time.Unix(0, 0).UTC(), ReceivedAt: time.Unix(1, 5000).UTC()},
		{ID: "b\"\\\b\f\n\r\t\x01\x1f\x7f", UserID: &user, Action: "é漢字🙂", ResourceType: "<script>", ResourceID: "&amp;",
			Details:   json.RawMessage(`{"a": [1, 2.5, "x<y>&z\u2028\u2029"], "b": {"c": null, "d": true}, "e": "\u00e9"}`),
			IPAddress: "2001:db8::1", UserAgent: "ua", SessionID: "s", RequestID: "r", Success: true, ErrorMessage: "line\r\nline",
			Timestamp: time.Date(2026, 11, 24, 9, 5, 3, 123456000, time.UTC), ReceivedAt: time.Date(2026, 12, 2, 7, 10, 15, 725053000, time.UTC)},
		{ID: "c\xff\xfe invalid", Action: "\u2029", ResourceType: "t", ResourceID: "r", Details: json.RawMessage("  {\n\"k\" :\t\"v\" }  "),
			Timestamp: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), ReceivedAt: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{ID: "d", UserID: &user, Action: "x", ResourceType: "t", ResourceID: "r", UserPseudonym: "psn_<x>", Tenant: "acme",
			Timestamp: time.Unix(2, 0).UTC(), ReceivedAt: time.Unix(3, 0).UTC()},
		{ID: "e", UserID: &user, Action: "x", ResourceType: "t", ResourceID: "r", UserPseudonym: "psn_e", Erased: true,
			Timestamp: time.Unix(2, 0).UTC(), ReceivedAt: time.Unix(3, 0).UTC()},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, rnd.IntN(12))
		for i := range b {
			b[i] = byte(rnd.IntN(256))
		}
		return string(b)
	}
	for range 2000 {
		u := str()
		views = append(views, EventView{ID: str(), UserID: &u, Action: str(), ResourceType: str(), ResourceID: str(),
			UserAgent: str(), SessionID: str(), ErrorMessage: str(), Success: rnd.IntN(2) == 0,
			Timestamp: time.Unix(rnd.Int64N(1<<34), rnd.Int64N(1e9)).UTC(), ReceivedAt: time.Unix(rnd.Int64N(1<<34), 0).UTC()})
	}
	var scratch bytes.Buffer
	for i, v := range views {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.AppendJSON(nil, &scratch)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("view %d: %v\n got %s\nwant %s", i, err, got, want)
		}
	}
	if _, err := (EventView{Details: json.RawMessage(`{"a":`)}).AppendJSON(nil, &scratch); err == nil {
		t.Fatal("invalid details: want an error")
	}
}

// AppendJSONRaw writes what encoding/json writes for a json.RawMessage,
// white space inside strings and escaped quotes and backslashes kept,
// for hand-picked texts and random ones; invalid text is an error.
func TestAppendJSONRawEqualsEncodingJSON(t *testing.T) {
	texts := []string{`{}`, ` [ ] `, `"x"`, `0`, `null`, `{"a": 1, "b": [1, 2.5, "x y"], "c": {"d": null}}`,
		"{\n\t\"k\" :\r\n \"v \\\" \\\\\" , \"e\\\\\": \"\\\\\\\\ <>&\u2028\u2029\"\t}",
		`{"s": "quote\" back\\slash \/ \b\f\n\r\t \u0001 é \u00e9 😀 \ud83d\ude00"}`, `[-0.5e+10, 1E-2, true, false]`}
	rnd := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"{", "}", "[", "]", `"`, `\`, `\"`, `\\`, ",", ":", " ", "\t", "\n", "1", "-2.5e3", "true", "null", "a", "é", "<", "\u2028"}
	for range 20000 {
		var b []byte
		for range rnd.IntN(16) {
			b = append(b, pieces[rnd.IntN(len(pieces))]...)
		}
		texts = append(texts, string(b))
	}
	var scratch bytes.Buffer
	valid := 0
	for _, text := range texts {
		want, werr := json.Marshal(json.RawMessage(text))
		got, err := AppendJSONRaw([]byte("prefix"), []byte(text), &scratch)
		if (err == nil) != (werr == nil) || (err == nil && string(got) != "prefix"+string(want)) || (err != nil && string(got) != "prefix") {
			t.Fatalf("%q: got %s (%v), want %s (%v)", text, got, err, want, werr)
		}
		if err == nil {
			valid++
		}
	}
	if valid < 100 {
		t.Fatalf("only %d valid texts", valid)
	}
}
