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
// data to erase and, with tenants on, the tenant whose data subject that
// user is ("" for the default tenant).
type EraseRequest struct {
	UserID string  `json:"userId"`
	Tenant *string `json:"tenant,omitempty"`
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

// held returns an error wrapping audit.ErrLegalHold, naming the setting,
// when a legal hold keeps the personal data of userID in tenant: a hold
// in every tenant (AUDITQ_RETENTION_HOLD_USERS) or one in that tenant
// (AUDITQ_TENANT_HOLD_USERS); else nil.
func (h EraseHandler) held(userID, tenant string) error {
	if h.holds[userID] {
		return fmt.Errorf("%w: the user is under legal hold in every tenant (AUDITQ_RETENTION_HOLD_USERS): erasure refused until the hold is lifted", audit.ErrLegalHold)
	}
	for _, t := range h.tenantHolds[userID] {
		if tenant == t {
			return fmt.Errorf("%w: the user is under legal hold in tenant %q (AUDITQ_TENANT_HOLD_USERS): erasure refused until the hold is lifted", audit.ErrLegalHold, t)
		}
	}
	return nil
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
	if req.UserID == "" {
		return EraseResult{}, audit.Invalid("userId", "is required: the user whose personal data to erase")
	}
	if err := audit.CheckFilterText("userId", req.UserID); err != nil {
		return EraseResult{}, err
	}
	tenant, err := h.tenant(req.Tenant)
	if err != nil {
		return EraseResult{}, err
	}
	if err := h.held(req.UserID, tenant); err != nil {
		return EraseResult{}, err
	}
	if h.store == nil {
		return EraseResult{}, audit.ErrErasureOff
	}
	var by []byte
	if requestedBy != nil {
		if by, err = json.Marshal(requestedBy); err != nil {
			return EraseResult{}, fmt.Errorf("erase: encode the requester: %w", err)
		}
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	e, err := h.store.BeginErasure(ctx, audit.Erasure{
		EventID: audit.ErasureEventIDPrefix + hex.EncodeToString(id), Tenant: tenant, Pseudonym: h.store.PseudonymIn(tenant, req.UserID),
		RequestedAt: audit.Normalize(h.now()), RequestedBy: by,
	})
	if err != nil {
		return EraseResult{}, fmt.Errorf("erase: %w", err)
	}
	if e, err = h.complete(ctx, e); err != nil {
		return EraseResult{}, err
	}
	return EraseResult{EventID: e.EventID, Tenant: e.Tenant, UserPseudonym: e.Pseudonym, RequestedAt: e.RequestedAt, KeysDestroyed: e.KeysErased}, nil
}

// tenant returns the tenant a request erases in: the one it names, which
// it must name when tenants are on; the default tenant otherwise. A
// missing or malformed tenant is a *audit.ValidationError naming it.
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
	for i, e := range pending {
		if _, err := h.complete(ctx, e); err != nil {
			return i, err
		}
	}
	return len(pending), nil
}

// complete writes e's erasure event (a duplicate when written before),
// then destroys the subject's keys.
func (h EraseHandler) complete(ctx context.Context, e audit.Erasure) (audit.Erasure, error) {
	if e.Completed {
		return e, nil
	}
	details := map[string]json.RawMessage{}
	if e.RequestedBy != nil {
		details["requestedBy"] = e.RequestedBy
	}
	body, err := json.Marshal(details)
	if err != nil {
		return e, fmt.Errorf("erase: %w", err)
	}
	// The erasure is recorded in the subject's tenant's trail.
	ev := audit.Event{
		ID: e.EventID, Action: audit.ActionErase, ResourceType: audit.ErasureResourceType, ResourceID: e.Pseudonym,
		Details: body, Success: true, OccurredAt: e.RequestedAt, ReceivedAt: e.RequestedAt, Tenant: e.Tenant,
	}
	if _, err := h.writer.Write(ctx, []audit.Event{ev}); err != nil {
		return e, fmt.Errorf("erase: record the erasure event %s: %w", e.EventID, err)
	}
	// Once begun, the destruction of the keys (with the replacement of the
	// key-encryption key) runs to its end even when the asker stops
	// waiting, within destroyTimeout.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()
	done, err := h.store.DestroyKeys(dctx, e)
	if err != nil {
		return e, fmt.Errorf("erase: %w", err)
	}
	return done, nil
}
