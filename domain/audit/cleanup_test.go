package audit_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

func TestDecodeCleanupRequest(t *testing.T) {
	before := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := []struct {
		name, in string
		want     audit.CleanupRequest
	}{
		{"retention days", `{"retentionDays": 90}`,
			audit.CleanupRequest{RetentionDays: 90, HasRetentionDays: true, ExcludeActions: []string{}}},
		{"before date with offset", `{"beforeDate": "2025-01-01T01:00:00+01:00", "dryRun": true}`,
			audit.CleanupRequest{BeforeDate: before, ExcludeActions: []string{}, DryRun: true}},
		{"exclude null is none", `{"retentionDays": 400, "excludeActions": null, "dryRun": null}`,
			audit.CleanupRequest{RetentionDays: 400, HasRetentionDays: true, ExcludeActions: []string{}}},
		{"exclude repeats dropped", `{"retentionDays": 90, "excludeActions": ["a.b", "c", "a.b"]}`,
			audit.CleanupRequest{RetentionDays: 90, HasRetentionDays: true, ExcludeActions: []string{"a.b", "c"}}},
		{"null date with days", `{"beforeDate": null, "retentionDays": 30}`,
			audit.CleanupRequest{RetentionDays: 30, HasRetentionDays: true, ExcludeActions: []string{}}},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			got, err := audit.DecodeCleanupRequest([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}

	bad := []struct{ name, in, field, rule string }{
		{"not an object", `[1]`, "(message)", "must be a JSON object"},
		{"neither", `{"dryRun": true}`, "retentionDays", "is required"},
		{"both", `{"retentionDays": 90, "beforeDate": "2025-01-01T00:00:00Z"}`, "beforeDate", "not both"},
		{"unknown field", `{"retentionDays": 90, "olderThan": 3}`, "olderThan", "unknown field"},
		{"repeated field", `{"retentionDays": 90, "retentionDays": 91}`, "retentionDays", "more than once"},
		{"days as string", `{"retentionDays": "90"}`, "retentionDays", "whole number"},
		{"days fractional", `{"retentionDays": 90.5}`, "retentionDays", "whole number"},
		{"days negative", `{"retentionDays": -1}`, "retentionDays", "negative"},
		{"days huge", `{"retentionDays": 99999999999999999999}`, "retentionDays", "at most"},
		{"invalid date", `{"beforeDate": "2025-02-30T00:00:00Z"}`, "beforeDate", "RFC 3339"},
		{"date without zone", `{"beforeDate": "2025-01-01"}`, "beforeDate", "RFC 3339"},
		{"date as number", `{"beforeDate": 1735689600}`, "beforeDate", "RFC 3339 string"},
		{"exclude not array", `{"retentionDays": 90, "excludeActions": "a"}`, "excludeActions", "array"},
		{"exclude non-string", `{"retentionDays": 90, "excludeActions": ["a", 7]}`, "excludeActions[1]", "must be a string"},
		{"exclude null item", `{"retentionDays": 90, "excludeActions": [null]}`, "excludeActions[0]", "must be a string"},
		{"exclude empty", `{"retentionDays": 90, "excludeActions": [""]}`, "excludeActions[0]", "non-empty"},
		{"exclude control char", `{"retentionDays": 90, "excludeActions": ["a\u0001"]}`, "excludeActions[0]", "control"},
		{"dry run string", `{"retentionDays": 90, "dryRun": "yes"}`, "dryRun", "true or false"},
		{"trailing data", `{"retentionDays": 90} {}`, "(message)", "after the JSON object"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := audit.DecodeCleanupRequest([]byte(c.in))
			var v *audit.ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			if v.Field != c.field || !strings.Contains(v.Rule, c.rule) {
				t.Fatalf("got %q, want field %q with rule containing %q", err, c.field, c.rule)
			}
			if !audit.IsPermanent(err) {
				t.Fatal("a validation error must be permanent")
			}
		})
	}
}

func TestRetentionPolicyPlan(t *testing.T) {
	asOf := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	p := audit.RetentionPolicy{
		MinDays: 30, HoldUsers: []string{"u-held"},
		HoldResources: []audit.ResourceRef{{Type: "document", ID: "42"}},
	}
	req := func(js string) audit.CleanupRequest {
		r, err := audit.DecodeCleanupRequest([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	c, err := p.Plan(req(`{"retentionDays": 365, "excludeActions": ["security.breach"]}`), asOf)
	if err != nil {
		t.Fatal(err)
	}
	want := audit.Cleanup{
		Cutoff: time.Date(2025, 11, 25, 3, 0, 0, 0, time.UTC), ExcludeActions: []string{"security.breach"},
		HoldUsers: []string{"u-held"}, HoldResources: p.HoldResources,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("plan = %+v\nwant %+v", c, want)
	}
	// Exactly at the minimum retention is allowed, for both forms.
	if _, err := p.Plan(req(`{"retentionDays": 30}`), asOf); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(req(`{"beforeDate": "2026-10-26T03:00:00Z"}`), asOf); err != nil {
		t.Fatal(err)
	}

	bad := []struct{ name, in, field, rule string }{
		{"days below minimum", `{"retentionDays": 29}`, "retentionDays", "minimum retention of 30 days"},
		{"days zero", `{"retentionDays": 0}`, "retentionDays", "minimum retention"},
		{"date too recent", `{"beforeDate": "2026-10-26T03:00:01Z"}`, "beforeDate", "newer than the minimum retention"},
		{"date in the future", `{"beforeDate": "2027-01-01T00:00:00Z"}`, "beforeDate", "in the future"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.Plan(req(c.in), asOf)
			var v *audit.ValidationError
			if !errors.As(err, &v) || v.Field != c.field || !strings.Contains(v.Rule, c.rule) {
				t.Fatalf("got %v, want field %q with rule containing %q", err, c.field, c.rule)
			}
		})
	}
}

func TestParseResourceRef(t *testing.T) {
	r, err := audit.ParseResourceRef(" document:a:b ")
	if err != nil || r != (audit.ResourceRef{Type: "document", ID: "a:b"}) {
		t.Fatalf("got %+v, %v", r, err)
	}
	for _, s := range []string{"42", ":42", "document:", ""} {
		if _, err := audit.ParseResourceRef(s); err == nil {
			t.Errorf("ParseResourceRef(%q) accepted", s)
		}
	}
}

// Tenant holds reach the plan sorted by tenant, for a beforeDate cleanup
// as for a retentionDays one.
func TestRetentionPolicyPlanTenantHolds(t *testing.T) {
	asOf := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	p := audit.RetentionPolicy{
		MinDays:         30,
		TenantHoldUsers: []audit.TenantUser{{Tenant: "globex", UserID: "u-2"}, {Tenant: "acme", UserID: "u-1"}},
		TenantHoldResources: []audit.TenantResource{
			{Tenant: "globex", Resource: audit.ResourceRef{Type: "doc", ID: "1"}}, {Tenant: "acme", Resource: audit.ResourceRef{Type: "case", ID: "a:b"}}},
	}
	for _, body := range []string{`{"retentionDays": 90}`, `{"beforeDate": "2026-01-01T00:00:00Z"}`} {
		r, err := audit.DecodeCleanupRequest([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Plan(r, asOf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.TenantHoldUsers, []audit.TenantUser{{Tenant: "acme", UserID: "u-1"}, {Tenant: "globex", UserID: "u-2"}}) ||
			len(c.TenantHoldResources) != 2 || c.TenantHoldResources[0].Tenant != "acme" || c.TenantHoldResources[0].Resource.ID != "a:b" {
			t.Fatalf("%s: tenant holds %+v %+v", body, c.TenantHoldUsers, c.TenantHoldResources)
		}
	}
}

func TestParseTenantHolds(t *testing.T) {
	if h, err := audit.ParseTenantUser("S", " acme:org:u-1 "); err != nil || h != (audit.TenantUser{Tenant: "acme", UserID: "org:u-1"}) {
		t.Fatalf("ParseTenantUser: %+v, %v", h, err)
	}
	if h, err := audit.ParseTenantResource("S", "acme:case:2026:7"); err != nil ||
		h != (audit.TenantResource{Tenant: "acme", Resource: audit.ResourceRef{Type: "case", ID: "2026:7"}}) {
		t.Fatalf("ParseTenantResource: %+v, %v", h, err)
	}
	for _, s := range []string{"u-1", ":u-1", "acme:", "a.b:u-1"} {
		var ve *audit.ValidationError
		if _, err := audit.ParseTenantUser("AUDITQ_TENANT_HOLD_USERS", s); !errors.As(err, &ve) || ve.Field != "AUDITQ_TENANT_HOLD_USERS" {
			t.Errorf("ParseTenantUser(%q): %v, want a validation error naming the setting", s, err)
		}
	}
	for _, s := range []string{"document:42", "acme:document", "acme::42", "a b:doc:1"} {
		var ve *audit.ValidationError
		if _, err := audit.ParseTenantResource("AUDITQ_TENANT_HOLD_RESOURCES", s); !errors.As(err, &ve) || ve.Field != "AUDITQ_TENANT_HOLD_RESOURCES" {
			t.Errorf("ParseTenantResource(%q): %v, want a validation error naming the setting", s, err)
		}
	}
}
