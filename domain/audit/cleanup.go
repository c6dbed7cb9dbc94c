package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention limits. They bound what one audit.cleanup job may ask for.
const (
	// MaxExcludeActions is the most actions one cleanup may exclude (so the
	// run's own audit event stays within MaxDetailsBytes).
	MaxExcludeActions = 100
	// MaxRetentionDays keeps retentionDays far from time arithmetic overflow
	// (100 years).
	MaxRetentionDays = 36500
)

// Cleanup action and resource: every retention run is itself recorded as an
// audit event with these values.
const (
	CleanupAction       = "audit.cleanup"
	CleanupResourceType = "audit_log"
	CleanupResourceID   = "audit_logs"
)

// CleanupRequest is an audit.cleanup job as sent, decoded and type-checked
// but not yet checked against the retention policy (see
// RetentionPolicy.Plan). Exactly one of BeforeDate and RetentionDays is set.
type CleanupRequest struct {
	BeforeDate       time.Time // zero unless "beforeDate" was sent
	RetentionDays    int       // meaningful only when HasRetentionDays
	HasRetentionDays bool      // "retentionDays" was sent
	ExcludeActions   []string  // never nil; actions whose rows are kept
	DryRun           bool
}

// DecodeCleanupRequest parses an audit.cleanup message:
//
//	{"beforeDate"?: RFC 3339, "retentionDays"?: int, "excludeActions"?: [string], "dryRun"?: bool}
//
// with exactly one of beforeDate and retentionDays. Unknown and repeated
// fields, wrong types, and non-string or empty excludeActions entries are
// rejected; excludeActions null means none, dryRun null means false. The
// error is a *ValidationError naming the field.
func DecodeCleanupRequest(data []byte) (CleanupRequest, error) {
	req := CleanupRequest{ExcludeActions: []string{}}
	var hasBefore bool
	err := decodeObject("", data, func(key string, raw json.RawMessage) error {
		switch key {
		case "beforeDate":
			if isNull(raw) {
				return nil
			}
			hasBefore = true
			if raw[0] != '"' {
				return Invalid(key, "must be an RFC 3339 string such as \"2025-01-01T00:00:00Z\", got %s", kindOf(raw))
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return Invalid(key, "is not a valid JSON string: %v", err)
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return Invalid(key, "must be an RFC 3339 time such as \"2025-01-01T00:00:00Z\", got %q", truncate(s, 64))
			}
			req.BeforeDate = Normalize(t)
		case "retentionDays":
			if isNull(raw) {
				return nil
			}
			req.HasRetentionDays = true
			s := string(raw)
			if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
				return Invalid(key, "must be a whole number of days, got %s", kindOf(raw))
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				if strings.ContainsAny(s, ".eE") {
					return Invalid(key, "must be a whole number of days, got %s", truncate(s, 32))
				}
				return Invalid(key, "must be at most %d days, got %s", MaxRetentionDays, truncate(s, 32))
			}
			if n < 0 {
				return Invalid(key, "must not be negative, got %d", n)
			}
			if n > MaxRetentionDays {
				return Invalid(key, "must be at most %d days, got %d", MaxRetentionDays, n)
			}
			req.RetentionDays = n
		case "excludeActions":
			actions, err := excludeActions(key, raw)
			if err != nil {
				return err
			}
			req.ExcludeActions = actions
		case "dryRun":
			switch string(raw) {
			case "true":
				req.DryRun = true
			case "false", "null":
				req.DryRun = false
			default:
				return Invalid(key, "must be true or false, got %s", kindOf(raw))
			}
		default:
			return Invalid(key, "unknown field (expected beforeDate, retentionDays, excludeActions, dryRun)")
		}
		return nil
	})
	if err != nil {
		return CleanupRequest{}, err
	}
	switch {
	case hasBefore && req.HasRetentionDays:
		return CleanupRequest{}, Invalid("beforeDate", "set either beforeDate or retentionDays, not both")
	case !hasBefore && !req.HasRetentionDays:
		return CleanupRequest{}, Invalid("retentionDays", "is required: set either retentionDays or beforeDate")
	}
	return req, nil
}

// excludeActions decodes an array of distinct, non-empty action names; null
// means none.
func excludeActions(field string, raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return []string{}, nil
	}
	if raw[0] != '[' {
		return nil, Invalid(field, "must be an array of action names, got %s", kindOf(raw))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, Invalid(field, "is not a valid JSON array: %v", err)
	}
	if len(items) > MaxExcludeActions {
		return nil, Invalid(field, "holds %d actions, more than the limit of %d", len(items), MaxExcludeActions)
	}
	out := make([]string, 0, len(items))
	seen := make(map[string]struct{}, len(items))
	for i, item := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		if isNull(item) || item[0] != '"' {
			return nil, Invalid(f, "must be a string (an action name), got %s", kindOf(item))
		}
		s, err := text(f, string(item), MaxNameLen, textSingleLine)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, Invalid(f, "must be a non-empty action name")
		}
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out, nil
}

// ResourceRef names one resource: its type and id, as in an event's
// resourceType and resourceId.
type ResourceRef struct {
	Type, ID string
}

// ParseResourceRef parses "type:id" (split at the first colon, so ids may
// contain colons, types may not). It returns an error when either part is
// empty.
func ParseResourceRef(s string) (ResourceRef, error) {
	typ, id, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || typ == "" || id == "" {
		return ResourceRef{}, fmt.Errorf("resource %q: must be type:id, e.g. document:42", s)
	}
	return ResourceRef{Type: typ, ID: id}, nil
}

// String returns "type:id".
func (r ResourceRef) String() string { return r.Type + ":" + r.ID }

// ParseTenantUser parses "tenant:userId", split at the first colon (tenant
// names have none; user ids may). It returns a *ValidationError naming
// field when the tenant is no tenant name or the user id is empty.
func ParseTenantUser(field, s string) (TenantUser, error) {
	t, u, _ := strings.Cut(strings.TrimSpace(s), ":")
	if err := CheckTenant(field, t); err != nil {
		return TenantUser{}, err
	}
	if u == "" {
		return TenantUser{}, Invalid(field, "%q must be tenant:userId, e.g. acme:u-1", s)
	}
	return TenantUser{Tenant: t, UserID: u}, nil
}

// ParseTenantResource parses "tenant:type:id". It returns a
// *ValidationError naming field when the tenant is no tenant name or the
// rest is no "type:id".
func ParseTenantResource(field, s string) (TenantResource, error) {
	t, r, _ := strings.Cut(strings.TrimSpace(s), ":")
	if err := CheckTenant(field, t); err != nil {
		return TenantResource{}, err
	}
	ref, err := ParseResourceRef(r)
	if err != nil {
		return TenantResource{}, Invalid(field, "%q must be tenant:type:id, e.g. acme:document:42", s)
	}
	return TenantResource{Tenant: t, Resource: ref}, nil
}

// TenantUser is one tenant's user: a legal hold of the user's events in
// that tenant only (AUDITQ_TENANT_HOLD_USERS).
type TenantUser struct {
	Tenant, UserID string
}

// TenantResource is one tenant's resource: a legal hold of the events about
// it in that tenant only (AUDITQ_TENANT_HOLD_RESOURCES).
type TenantResource struct {
	Tenant   string
	Resource ResourceRef
}

// RetentionPolicy is the operator's limits on cleanups: how recent a cutoff
// may be, and the legal holds no cleanup may touch.
type RetentionPolicy struct {
	// MinDays: a cutoff newer than MinDays before the job's time is
	// rejected.
	MinDays int
	// HoldUsers: rows of these user ids are never deleted.
	HoldUsers []string
	// HoldResources: rows about these resources are never deleted.
	HoldResources []ResourceRef
	// TenantDays gives tenants a retention of their own
	// (AUDITQ_TENANT_RETENTION_DAYS, docs/tenants.md): a retentionDays
	// cleanup keeps this many days of the tenant's events instead of the
	// job's.
	TenantDays map[string]int
	// HoldUsers and HoldResources hold in every tenant; TenantHoldUsers
	// and TenantHoldResources hold the events of their tenant only.
	TenantHoldUsers     []TenantUser
	TenantHoldResources []TenantResource
}

// TenantCutoff is the cutoff of one tenant's events in a cleanup.
type TenantCutoff struct {
	Tenant string
	Cutoff time.Time // UTC, microsecond precision
}

// Cleanup is a validated retention run: delete the rows whose event time
// (occurred_at) is before Cutoff, unless their action is excluded, their
// user or resource is held (in every tenant, or in the row's own). A
// Cleanup from Plan satisfies every guard rail.
type Cleanup struct {
	Cutoff         time.Time // UTC, microsecond precision
	ExcludeActions []string  // never nil
	HoldUsers      []string  // never nil
	HoldResources  []ResourceRef
	DryRun         bool
	// TenantCutoffs replace Cutoff for the events of these tenants, by
	// tenant name; none unless the policy has TenantDays and the job
	// asked for retentionDays (a beforeDate applies to every tenant).
	TenantCutoffs []TenantCutoff
	// TenantHoldUsers and TenantHoldResources keep the rows of a user or
	// resource of one tenant, sorted by tenant; none unless the policy
	// has them.
	TenantHoldUsers     []TenantUser
	TenantHoldResources []TenantResource
}

// Bound is the latest cutoff of c, its own or a tenant's: no row at or
// after it is deleted.
func (c Cleanup) Bound() time.Time {
	b := c.Cutoff
	for _, t := range c.TenantCutoffs {
		if t.Cutoff.After(b) {
			b = t.Cutoff
		}
	}
	return b
}

// Plan checks req against the policy and returns what to delete. asOf is
// the job's own time (when the stream stored it), so a redelivered job
// computes the same cutoff. It returns a *ValidationError naming the field
// when the cutoff lies in the future or is newer than MinDays before asOf.
func (p RetentionPolicy) Plan(req CleanupRequest, asOf time.Time) (Cleanup, error) {
	asOf = Normalize(asOf)
	field := "beforeDate"
	cutoff := req.BeforeDate
	if req.HasRetentionDays {
		field = "retentionDays"
		if req.RetentionDays < p.MinDays {
			return Cleanup{}, Invalid(field, "is %d, less than the minimum retention of %d days (AUDITQ_RETENTION_MIN_DAYS)", req.RetentionDays, p.MinDays)
		}
		cutoff = asOf.AddDate(0, 0, -req.RetentionDays)
	}
	if cutoff.After(asOf) {
		return Cleanup{}, Invalid(field, "cutoff %s is in the future (the job was sent at %s)", cutoff.Format(time.RFC3339), asOf.Format(time.RFC3339))
	}
	if newest := asOf.AddDate(0, 0, -p.MinDays); cutoff.After(newest) {
		return Cleanup{}, Invalid(field, "cutoff %s is newer than the minimum retention of %d days (AUDITQ_RETENTION_MIN_DAYS): it must be at or before %s",
			cutoff.Format(time.RFC3339), p.MinDays, newest.Format(time.RFC3339))
	}
	c := Cleanup{
		Cutoff:         Normalize(cutoff),
		ExcludeActions: req.ExcludeActions,
		HoldUsers:      p.HoldUsers,
		HoldResources:  p.HoldResources,
		DryRun:         req.DryRun,
	}
	if c.ExcludeActions == nil {
		c.ExcludeActions = []string{}
	}
	if c.HoldUsers == nil {
		c.HoldUsers = []string{}
	}
	c.TenantHoldUsers = slices.Clone(p.TenantHoldUsers)
	slices.SortStableFunc(c.TenantHoldUsers, func(a, b TenantUser) int { return strings.Compare(a.Tenant, b.Tenant) })
	c.TenantHoldResources = slices.Clone(p.TenantHoldResources)
	slices.SortStableFunc(c.TenantHoldResources, func(a, b TenantResource) int { return strings.Compare(a.Tenant, b.Tenant) })
	if req.HasRetentionDays {
		for t, days := range p.TenantDays {
			c.TenantCutoffs = append(c.TenantCutoffs, TenantCutoff{Tenant: t, Cutoff: Normalize(asOf.AddDate(0, 0, -days))})
		}
		slices.SortFunc(c.TenantCutoffs, func(a, b TenantCutoff) int { return strings.Compare(a.Tenant, b.Tenant) })
	}
	return c, nil
}

// RetentionStore deletes expired events. Implementations delete in bounded
// chunks, each committed on its own, so ingest keeps flowing and an
// interrupted run (crash, deadline) leaves a consistent table that the same
// Cleanup can finish by running again.
type RetentionStore interface {
	// DeleteExpired deletes the rows c selects and returns how many it
	// deleted, also when it fails part-way (the chunks committed so far).
	DeleteExpired(ctx context.Context, c Cleanup) (int64, error)
	// CountExpired returns how many rows DeleteExpired would delete now.
	CountExpired(ctx context.Context, c Cleanup) (int64, error)
}

// MarshalJSON encodes r in the form DecodeCleanupRequest reads: beforeDate
// (RFC 3339) when set, else retentionDays; excludeActions; dryRun when
// true. It is the one encoder of the audit.cleanup body (schedules, CLI).
func (r CleanupRequest) MarshalJSON() ([]byte, error) {
	body := struct {
		BeforeDate     string   `json:"beforeDate,omitempty"`
		RetentionDays  *int     `json:"retentionDays,omitempty"`
		ExcludeActions []string `json:"excludeActions"`
		DryRun         bool     `json:"dryRun,omitempty"`
	}{ExcludeActions: r.ExcludeActions, DryRun: r.DryRun}
	if body.ExcludeActions == nil {
		body.ExcludeActions = []string{}
	}
	if !r.BeforeDate.IsZero() {
		body.BeforeDate = r.BeforeDate.UTC().Format(time.RFC3339Nano)
	} else {
		days := r.RetentionDays
		body.RetentionDays = &days
	}
	return json.Marshal(body)
}
