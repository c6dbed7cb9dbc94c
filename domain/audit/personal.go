package audit

import (
	"context"
	"errors"
	"time"
)

// ErasedUserID is the userId readers see on an event whose data subject
// was erased (docs/personal-data.md): a string, so the contract's types
// hold, and never a valid pseudonym.
const ErasedUserID = "[erased]"

// Erasure events: the trail records every erasure before the key is
// destroyed. The event's resourceId is the subject's pseudonym, never the
// user id.
const (
	ActionErase          = "audit.subject.erase"
	ErasureResourceType  = "data_subject"
	ErasureEventIDPrefix = "erase-"
)

// ErrLegalHold is returned when an erasure concerns a user under legal
// hold (AUDITQ_RETENTION_HOLD_USERS).
var ErrLegalHold = errors.New("legal hold")

// ErrErasureOff is returned when the deployment does not encrypt personal
// data (AUDITQ_PERSONAL_DATA is not encrypt), so there is no key to
// destroy.
var ErrErasureOff = errors.New("erasure needs AUDITQ_PERSONAL_DATA=encrypt")

// Erasure is one erasure of a data subject, as recorded before the
// subject's key is destroyed: the pending record a restart completes.
type Erasure struct {
	EventID     string    // id of the erasure event in the trail
	Tenant      string    // the subject's tenant (DefaultTenant without tenants)
	Pseudonym   string    // the subject's keyed pseudonym in that tenant
	RequestedAt time.Time // when it was asked for
	RequestedBy []byte    // JSON object: who asked, as the transport saw it; nil when unknown
	Completed   bool      // the key is destroyed
	KeysErased  int       // subject keys destroyed (one per key generation)
}

// ErasureStore records erasures and destroys subject keys.
type ErasureStore interface {
	// PseudonymIn returns the keyed pseudonym of a user id in a tenant.
	PseudonymIn(tenant, userID string) string
	// BeginErasures records, all or none, a pending erasure of the subject
	// (tenant and pseudonym) of each of list, subjects distinct, and
	// returns in list's order each subject's pending erasure: the one
	// recorded, or the one already pending.
	BeginErasures(ctx context.Context, list []Erasure) ([]Erasure, error)
	// DestroyKeysOf destroys every key of the subject of each erasure of
	// list (in its tenant only), marks them completed and returns list
	// completed. Doing it again destroys nothing more.
	DestroyKeysOf(ctx context.Context, list []Erasure) ([]Erasure, error)
	// PendingErasures lists the erasures recorded but not completed.
	PendingErasures(ctx context.Context) ([]Erasure, error)
}
