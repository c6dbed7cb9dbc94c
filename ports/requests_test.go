package ports

import (
	"errors"
	"testing"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
)

func TestDecodeRequest(t *testing.T) {
	cases := []struct {
		body, field, rule string
	}{
		{`{"limit":5,"action":"guild.*","success":false}`, "", ""},
		{``, "", ""},
		{` {} `, "", ""},
		{`{"limit":"5"}`, "limit", "must be an integer, got a string"},
		{`{"limit":1.5}`, "limit", "must be an integer, got a number 1.5"},
		{`{"success":"yes"}`, "success", "must be true or false, got a string"},
		{`{"userId":7}`, "userId", "must be a string, got a number"},
		{`{"userID":"u1"}`, "userID", `unknown field (field names are case-sensitive: "userId")`},
		{`{"user":"u1"}`, "user", "unknown field"},
		{`{"action":"a","action":"b"}`, "action", "appears more than once"},
		{`{} {}`, "(request)", "has data after the JSON object"},
		{`[]`, "(request)", "must be a JSON object, got an array"},
		{`"x"`, "(request)", "must be a JSON object, got a string"},
		{`{"limit":`, "(request)", "is not valid JSON: unexpected end of input"},
		{`{"limit":5,}`, "(request)", "is not valid JSON"},
		{"{\"action\":\"\xff\"}", "(request)", "is not valid UTF-8"},
	}
	for _, c := range cases {
		var req query.SearchRequest
		err := DecodeRequest([]byte(c.body), &req)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: %v", c.body, err)
			}
			continue
		}
		var v *audit.ValidationError
		if !errors.As(err, &v) || v.Field != c.field || len(v.Rule) < len(c.rule) || v.Rule[:len(c.rule)] != c.rule {
			t.Errorf("%s: got %v, want %s: %s", c.body, err, c.field, c.rule)
		}
	}
	var req query.SearchRequest
	if err := DecodeRequest([]byte(`{"limit":5,"success":false}`), &req); err != nil || *req.Limit != 5 || *req.Success {
		t.Fatalf("%+v %v", req, err)
	}
}
