package command

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// Operator actions on the poison stream (audit.admin.poison.replay and
// audit.admin.poison.discard), each recorded as an event of the trail with
// these actions, resource type PoisonResourceType and resource id
// "<poison subject>:<sequence>" (audit.poison.log:12).
const (
	ActionPoisonReplay  = "audit.poison.replay"
	ActionPoisonDiscard = "audit.poison.discard"
	PoisonResourceType  = "poison_message"
)

// PoisonReplayRequest is the body of audit.admin.poison.replay: the
// message's sequence and, to replay a corrected payload, that payload.
type PoisonReplayRequest struct {
	Seq     uint64  `json:"seq"`
	Payload *string `json:"payload,omitempty"`
}

// PoisonDiscardRequest is the body of audit.admin.poison.discard.
type PoisonDiscardRequest struct {
	Seq uint64 `json:"seq"`
}

// PoisonActionsHandler replays and discards poison messages for an
// operator and records each action, done or failed, in the trail through
// w (whatever AUDITQ_AUDIT_READS says: these change state).
type PoisonActionsHandler struct {
	stream audit.PoisonStream
	writer audit.Writer
	now    func() time.Time
}

// NewPoisonActionsHandler returns a PoisonActionsHandler over s, recording
// through w.
func NewPoisonActionsHandler(s audit.PoisonStream, w audit.Writer) PoisonActionsHandler {
	return PoisonActionsHandler{stream: s, writer: w, now: time.Now}
}

func checkSeq(seq uint64) error {
	if seq == 0 {
		return audit.Invalid("seq", "is required: the sequence number of a message of the poison stream (see audit.admin.poison.list)")
	}
	return nil
}

// Replay publishes message req.Seq (or req.Payload) to its job subject,
// removes it from the poison stream once stored, and records the action;
// requester is what the transport tells about who asked, as recorded.
// An unknown sequence is an error wrapping audit.ErrNotFound. When the
// action cannot be recorded it returns an error although the replay is
// done.
func (h PoisonActionsHandler) Replay(ctx context.Context, req PoisonReplayRequest, requester map[string]any) (audit.PoisonReplay, error) {
	if err := checkSeq(req.Seq); err != nil {
		return audit.PoisonReplay{}, err
	}
	var payload []byte
	request := map[string]any{"seq": req.Seq, "corrected": req.Payload != nil}
	if req.Payload != nil {
		payload = []byte(*req.Payload)
		sum := sha256.Sum256(payload)
		request["payloadSha256"] = hex.EncodeToString(sum[:])
	}
	m, err := h.stream.Get(ctx, req.Seq)
	if errors.Is(err, audit.ErrNotFound) {
		m = audit.PoisonMessage{Seq: req.Seq}
	}
	if err == nil && m.Truncated && req.Payload == nil {
		return audit.PoisonReplay{}, audit.Invalid("payload", "is required: the stored payload was cut to fit the broker; replay a corrected payload")
	}
	var r audit.PoisonReplay
	if err == nil {
		r, err = h.stream.Replay(ctx, req.Seq, payload)
	}
	details := map[string]any{"endpoint": "audit.admin.poison.replay", "request": request}
	if err == nil {
		details["replayedTo"] = map[string]any{"subject": r.Subject, "seq": r.Seq, "id": r.ID, "duplicate": r.Duplicate}
	}
	if rerr := h.record(ctx, ActionPoisonReplay, m, details, requester, err); rerr != nil {
		return audit.PoisonReplay{}, rerr
	}
	return r, err
}

// Discard removes message req.Seq from the poison stream and records the
// action; it returns the message removed, or an error wrapping
// audit.ErrNotFound.
func (h PoisonActionsHandler) Discard(ctx context.Context, req PoisonDiscardRequest, requester map[string]any) (audit.PoisonMessage, error) {
	if err := checkSeq(req.Seq); err != nil {
		return audit.PoisonMessage{}, err
	}
	m, err := h.stream.Discard(ctx, req.Seq)
	if errors.Is(err, audit.ErrNotFound) {
		m = audit.PoisonMessage{Seq: req.Seq}
	}
	details := map[string]any{"endpoint": "audit.admin.poison.discard", "request": req}
	if rerr := h.record(ctx, ActionPoisonDiscard, m, details, requester, err); rerr != nil {
		return audit.PoisonMessage{}, rerr
	}
	return m, err
}

// record stores the operator's action on m as an event: done when actErr
// is nil, else failed with the kind of failure. It returns an error only
// when the event cannot be stored.
func (h PoisonActionsHandler) record(ctx context.Context, act string, m audit.PoisonMessage, details map[string]any, requester map[string]any, actErr error) error {
	if m.Seq != 0 {
		msg := map[string]any{"job": m.Job, "id": m.ID, "reason": m.Reason, "target": m.Target, "storedAt": m.Time}
		if m.EventID != "" {
			msg["eventId"] = m.EventID
		}
		details["message"] = msg
	}
	if requester != nil {
		details["requester"] = requester
	}
	body, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("record %s: encode details: %w", act, err)
	}
	if len(body) > audit.MaxDetailsBytes {
		body, _ = json.Marshal(map[string]any{"endpoint": details["endpoint"], "truncated": true})
	}
	subject := m.Subject
	if subject == "" {
		subject = "audit.poison"
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	now := audit.Normalize(h.now())
	ev := audit.Event{
		ID: "operator-" + hex.EncodeToString(b), Action: act, ResourceType: PoisonResourceType,
		ResourceID: subject + ":" + strconv.FormatUint(m.Seq, 10), Details: body,
		Success: actErr == nil, OccurredAt: now, ReceivedAt: now,
	}
	if actErr != nil {
		ev.ErrorMessage = "internal error"
		if errors.Is(actErr, audit.ErrNotFound) {
			ev.ErrorMessage = "not found"
		}
	}
	if _, err := h.writer.Write(ctx, []audit.Event{ev}); err != nil {
		return fmt.Errorf("record %s of %s: %w", act, ev.ResourceID, err)
	}
	return nil
}
