package audit

import (
	"bytes"
	"encoding/json"
)

// EventID returns the id an event in data would be stored under, without
// validating the rest: its "id" field when that is a non-empty string,
// fallback (the message id the decoder falls back to) when the object has
// no id (absent, null or ""), and "" when data is not a JSON object or its
// id is not a string. It names rejected events in logs and in the poison
// stream's listings; DecodeEvent remains the only judge of validity.
func EventID(data []byte, fallback string) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return ""
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return ""
	}
	raw, ok := fields["id"]
	if !ok || isNull(raw) {
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
