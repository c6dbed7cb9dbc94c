package audit

import (
	"bytes"
	"encoding/json"
)

// EventID returns the id an event in data would be stored under, without
// validating the rest: its "id" field when that is a non-empty string,
// fallback (the message id the decoder falls back to) when the object has
// no id (absent, null or ""), and "" when data is not a JSON object or its
// id is not a string. The object is read up to its id only, so an event
// that breaks off later (invalid JSON, a cut payload) is still named. It
// names rejected events in logs and in the poison stream's listings;
// DecodeEvent remains the only judge of validity.
func EventID(data []byte, fallback string) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ""
		}
		if key != "id" {
			continue
		}
		if isNull(raw) {
			return fallback
		}
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return ""
		}
		if id == "" {
			return fallback
		}
		return id
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "" // not a whole object: an id may have followed
	}
	return fallback
}
