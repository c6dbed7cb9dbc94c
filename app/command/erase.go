package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// destroyTimeout bounds the destruction of one erasure's keys, which
// rewraps every other subject key (about 0.7 s for 100,000 subjects,
// docs/personal-data.md#performance).
const destroyTimeout = 5 * time.Minute

// EraseRequest is the body of audit.admin.erase: the user whose personal
// data to erase (userId), or a list of users (userIds, at most
// MaxEraseUsers) erased together, under one replacement of the
// key-encryption key; with tenants on, the tenant whose data subjects
// they are ("" for the default tenant).
type EraseRequest struct {
	UserID  string   `json:"userId,omitempty"`
	UserIDs []string `json:"userIds,omitempty"`
	Tenant  *string  `json:"tenant,omitempty"`
}

// MaxEraseUsers bounds the users of one erasure request.
const MaxEraseUsers = 1000

// EraseListResult is the answer of audit.admin.erase to a list of users:
// one result per user, in the order asked.
type EraseListResult struct {
	Erasures []EraseResult `json:"erasures"`
}

// EraseResult is the answer of audit.admin.erase.
type EraseResult struct {
	// EventID is the erasure event in the trail (action
	// audit.subject.erase, resourceId the pseudonym).
	EventID string `json:"eventId"`
	// Tenant is the erased subject's tenant; left out for the default
	// tenant.
	Tenant        string    `json:"tenant,omitempty"`
	UserPseudonym string    `json:"userPseudonym"`
	RequestedAt   time.Time `json:"requestedAt"`
	// KeysDestroyed counts the subject keys destroyed: 0 when the user had
	// no encrypted event (or was erased before and has none since).
	KeysDestroyed int `json:"keysDestroyed"`
}

// EraseConfig configures erasures.
type EraseConfig struct {
	// HoldUsers are under legal hold (AUDITQ_RETENTION_HOLD_USERS) in
	// every tenant: their erasure is refused.
	HoldUsers []string
	// TenantHoldUsers are under legal hold in one tenant
	// (AUDITQ_TENANT_HOLD_USERS): that tenant's erasure of the user is
	// refused.
	TenantHoldUsers []audit.TenantUser
	// Tenants is whether tenants are on (AUDITQ_TENANTS): then a request
	// must name the tenant.
	Tenants bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// EraseHandler erases a data subject's personal data by crypto-shredding:
// it records a pending erasure, writes the erasure event into the trail,
// then destroys the subject's keys. A crash between the steps leaves the
// pending record, which CompletePending finishes at the next start.
type EraseHandler struct {
	store  audit.ErasureStore
	writer audit.Writer
	holds  map[string]bool
	// tenantHolds lists, by user id, the tenants holding the user.
	tenantHolds map[string][]string
	tenants     bool
	now         func() time.Time
}

// NewEraseHandler returns an EraseHandler over store, writing the erasure
// events through w. A nil store (personal data not encrypted) refuses
// every erasure with audit.ErrErasureOff.
func NewEraseHandler(store audit.ErasureStore, w audit.Writer, cfg EraseConfig) EraseHandler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	holds := make(map[string]bool, len(cfg.HoldUsers))
	for _, u := range cfg.HoldUsers {
		holds[u] = true
	}
	tenantHolds := map[string][]string{}
	for _, h := range cfg.TenantHoldUsers {
		tenantHolds[h.UserID] = append(tenantHolds[h.UserID], h.Tenant)
	}
	return EraseHandler{store: store, writer: w, holds: holds, tenantHolds: tenantHolds, tenants: cfg.Tenants, now: cfg.Now}
}

// held returns an error wrapping audit.ErrLegalHold, naming the setting
// and the user (name: its field), when a legal hold keeps the personal
// data of userID in tenant: a hold in every tenant
// (AUDITQ_RETENTION_HOLD_USERS) or one in that tenant
// (AUDITQ_TENANT_HOLD_USERS); else nil.
func (h EraseHandler) held(name, userID, tenant string) error {
	if h.holds[userID] {
		return fmt.Errorf("%w: %s: the user is under legal hold in every tenant (AUDITQ_RETENTION_HOLD_USERS): erasure refused until the hold is lifted", audit.ErrLegalHold, name)
	}
	for _, t := range h.tenantHolds[userID] {
		if tenant == t {
			return fmt.Errorf("%w: %s: the user is under legal hold in tenant %q (AUDITQ_TENANT_HOLD_USERS): erasure refused until the hold is lifted", audit.ErrLegalHold, name, t)
		}
	}
	return nil
}

// tenant returns the tenant an erasure request names: required with
// tenants on, absent or "" with tenants off.
func (h EraseHandler) tenant(t *string) (string, error) {
	switch {
	case t == nil && h.tenants:
		return "", audit.Invalid("tenant", "is required when tenants are on (AUDITQ_TENANTS): the tenant whose data subject to erase (\"\" for the default tenant)")
	case t == nil || *t == audit.DefaultTenant:
		return audit.DefaultTenant, nil
	case !h.tenants:
		return "", audit.Invalid("tenant", "must be absent or \"\": tenants are off (AUDITQ_TENANTS)")
	}
	if err := audit.CheckTenant("tenant", *t); err != nil {
		return "", err
	}
	return *t, nil
}

// Handle erases the personal data of req.UserID in req.Tenant (the
// default tenant when tenants are off): the same user id in another
// tenant is another data subject, left as it is. requestedBy (who asked,
// as the transport saw it; nil when unknown) is recorded in the erasure
// event. It returns a *audit.ValidationError for a bad request, an error
// wrapping audit.ErrLegalHold for a held user, audit.ErrErasureOff when
// personal data is not encrypted; anything else is transient, and asking
// again completes the same erasure.
func (h EraseHandler) Handle(ctx context.Context, req EraseRequest, requestedBy map[string]any) (EraseResult, error) {
	if req.UserIDs != nil {
		return EraseResult{}, audit.Invalid("userIds", "is answered by HandleList: give userId or userIds, not both")
	}
	if req.UserID == "" {
		return EraseResult{}, audit.Invalid("userId", "is required: the user whose personal data to erase (or userIds, a list)")
	}
	out, err := h.erase(ctx, []string{req.UserID}, "userId", req.Tenant, requestedBy)
	if err != nil {
		return EraseResult{}, err
	}
	return out[0], nil
}

// HandleList erases the personal data of every user of req.UserIDs as
// Handle erases one: each gets its own erasure event naming requestedBy,
// and one replacement of the key-encryption key serves them all. A bad
// or held user refuses the whole list, naming its index.
func (h EraseHandler) HandleList(ctx context.Context, req EraseRequest, requestedBy map[string]any) (EraseListResult, error) {
	switch {
	case req.UserID != "":
		return EraseListResult{}, audit.Invalid("userId", "give userId or userIds, not both")
	case len(req.UserIDs) == 0:
		return EraseListResult{}, audit.Invalid("userIds", "is required: the users whose personal data to erase")
	case len(req.UserIDs) > MaxEraseUsers:
		return EraseListResult{}, audit.Invalid("userIds", "holds %d users, at most %d per request", len(req.UserIDs), MaxEraseUsers)
	}
	out, err := h.erase(ctx, req.UserIDs, "userIds", req.Tenant, requestedBy)
	if err != nil {
		return EraseListResult{}, err
	}
	return EraseListResult{Erasures: out}, nil
}

// erase erases users of tenant t (named field in errors, with the index
// for a list): it records a pending erasure of each, writes their erasure
// events, then destroys their keys.
func (h EraseHandler) erase(ctx context.Context, users []string, field string, t *string, requestedBy map[string]any) ([]EraseResult, error) {
	tenant, err := h.tenant(t)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(users))
	for i, u := range users {
		name := field
		if field == "userIds" {
			name = fmt.Sprintf("userIds[%d]", i)
		}
		if u == "" {
			return nil, audit.Invalid(name, "is empty: a user whose personal data to erase")
		}
		if err := audit.CheckFilterText(name, u); err != nil {
			return nil, err
		}
		if j, ok := seen[u]; ok {
			return nil, audit.Invalid(name, "repeats userIds[%d]", j)
		}
		seen[u] = i
		if err := h.held(name, u, tenant); err != nil {
			return nil, err
		}
	}
	if h.store == nil {
		return nil, audit.ErrErasureOff
	}
	var by []byte
	if requestedBy != nil {
		if by, err = json.Marshal(requestedBy); err != nil {
			return nil, fmt.Errorf("erase: encode the requester: %w", err)
		}
	}
	at := audit.Normalize(h.now())
	list := make([]audit.Erasure, len(users))
	for i, u := range users {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		list[i] = audit.Erasure{
			EventID: audit.ErasureEventIDPrefix + hex.EncodeToString(id), Tenant: tenant, Pseudonym: h.store.PseudonymIn(tenant, u),
			RequestedAt: at, RequestedBy: by,
		}
	}
	// Every user its own pending erasure, all recorded in one transaction.
	list, err = h.store.BeginErasures(ctx, list)
	if err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}
	list, err = h.complete(ctx, list)
	if err != nil {
		return nil, err
	}
	out := make([]EraseResult, len(list))
	for i, e := range list {
		out[i] = EraseResult{EventID: e.EventID, Tenant: e.Tenant, UserPseudonym: e.Pseudonym, RequestedAt: e.RequestedAt, KeysDestroyed: e.KeysErased}
	}
	return out, nil
}

// CompletePending completes every erasure recorded but not finished (a
// crash between its steps) and returns how many it completed.
func (h EraseHandler) CompletePending(ctx context.Context) (int, error) {
	if h.store == nil {
		return 0, nil
	}
	pending, err := h.store.PendingErasures(ctx)
	if err != nil {
		return 0, fmt.Errorf("complete erasures: %w", err)
	}
	if _, err := h.complete(ctx, pending); err != nil {
		return 0, err
	}
	return len(pending), nil
}

// complete writes the erasure events of list not completed (duplicates
// when written before) in one write, then destroys their keys under one
// replacement of the key-encryption key (DestroyKeysOf). It returns list
// completed.
func (h EraseHandler) complete(ctx context.Context, list []audit.Erasure) ([]audit.Erasure, error) {
	var evs []audit.Event
	for _, e := range list {
		if e.Completed {
			continue
		}
		details := map[string]json.RawMessage{}
		if e.RequestedBy != nil {
			details["requestedBy"] = e.RequestedBy
		}
		body, err := json.Marshal(details)
		if err != nil {
			return nil, fmt.Errorf("erase: %w", err)
		}
		evs = append(evs, audit.Event{
			ID: e.EventID, Action: audit.ActionErase, ResourceType: audit.ErasureResourceType, ResourceID: e.Pseudonym,
			Details: body, Success: true, OccurredAt: e.RequestedAt, ReceivedAt: e.RequestedAt,
			Tenant: e.Tenant, // the erasure is recorded in the subject's tenant's trail
		})
	}
	if len(evs) == 0 {
		return list, nil
	}
	if _, err := h.writer.Write(ctx, evs); err != nil {
		return nil, fmt.Errorf("erase: record the erasure events %s...: %w", evs[0].ID, err)
	}
	// Once begun, the destruction of the keys (with the replacement of the
	// key-encryption key) runs to its end even when the asker stops
	// waiting, within destroyTimeout.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()
	out, err := h.store.DestroyKeysOf(dctx, list)
	if err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}
	return out, nil
}
