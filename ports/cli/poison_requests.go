package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/ports/contract"
)

// poisonRequestTimeout bounds each audit.admin.poison.* request.
const poisonRequestTimeout = 30 * time.Second

// RequestPoison returns a PoisonOpener whose store asks the running
// service (audit.admin.poison.list, .get, .replay, .discard) on a
// connection of its own: an operator's user needs those requests only,
// not the poison stream's JetStream API, and each replay and discard is
// recorded with the identity the server authenticated.
func RequestPoison(connect Connector) PoisonOpener {
	return func(context.Context) (PoisonStore, error) {
		nc, err := connect()
		if err != nil {
			return nil, err
		}
		return &requestPoison{nc: nc}, nil
	}
}

type requestPoison struct{ nc *nats.Conn }

func (s *requestPoison) Stream() string { return "AUDIT_POISON" }
func (s *requestPoison) Close()         { s.nc.Close() }

// ask sends one request and decodes its answer into out.
func (s *requestPoison) ask(ctx context.Context, subject string, body, out any) error {
	data, err := requestOn(ctx, s.nc, subject, body, poisonRequestTimeout)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", subject, err)
	}
	return nil
}

// List pages through audit.admin.poison.list until f.Limit messages (all
// with Limit 0) are read.
func (s *requestPoison) List(ctx context.Context, f PoisonFilter) ([]PoisonMessage, error) {
	var out []PoisonMessage
	cursor := ""
	for {
		limit := contractMaxPage
		if f.Limit > 0 && f.Limit-len(out) < limit {
			limit = f.Limit - len(out)
		}
		var page contract.PoisonList
		req := map[string]any{"limit": limit}
		if f.Job != "" {
			req["job"] = f.Job
		}
		if f.Reason != "" {
			req["reason"] = f.Reason
		}
		if cursor != "" {
			req["cursor"] = cursor
		}
		if err := s.ask(ctx, contract.SubjectAdminPoisonList, req, &page); err != nil {
			return out, err
		}
		for _, m := range page.Messages {
			out = append(out, fromView(m.PoisonMessageView))
		}
		if page.NextCursor == nil || (f.Limit > 0 && len(out) >= f.Limit) {
			return out, nil
		}
		cursor = *page.NextCursor
	}
}

// contractMaxPage is the largest page audit.admin.poison.list gives.
const contractMaxPage = 100

func (s *requestPoison) Get(ctx context.Context, seq uint64) (PoisonMessage, error) {
	var d contract.PoisonDetail
	if err := s.ask(ctx, contract.SubjectAdminPoisonGet, map[string]uint64{"seq": seq}, &d); err != nil {
		return PoisonMessage{}, err
	}
	m := fromView(d.PoisonMessageView)
	m.Headers = nats.Header(d.Headers)
	switch {
	case d.Payload != nil:
		m.Payload = []byte(*d.Payload)
	case d.PayloadBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*d.PayloadBase64)
		if err != nil {
			return PoisonMessage{}, fmt.Errorf("decode the payload of poison message %d: %w", seq, err)
		}
		m.Payload = b
	}
	return m, nil
}

func (s *requestPoison) Replay(ctx context.Context, seq uint64, payload []byte) (PoisonReplay, error) {
	req := map[string]any{"seq": seq}
	if payload != nil {
		req["payload"] = string(payload)
	}
	var r contract.PoisonReplayed
	if err := s.ask(ctx, contract.SubjectAdminPoisonReplay, req, &r); err != nil {
		return PoisonReplay{}, err
	}
	return PoisonReplay{Subject: r.Subject, Seq: r.Seq, ID: r.ID, Duplicate: r.Duplicate}, nil
}

func (s *requestPoison) Discard(ctx context.Context, seq uint64) (PoisonMessage, error) {
	var d contract.PoisonDiscarded
	if err := s.ask(ctx, contract.SubjectAdminPoisonDiscard, map[string]uint64{"seq": seq}, &d); err != nil {
		return PoisonMessage{}, err
	}
	return fromView(d.Discarded.PoisonMessageView), nil
}

func fromView(v contract.PoisonMessageView) PoisonMessage {
	return PoisonMessage{
		Seq: v.Seq, Time: v.Time, Subject: v.Subject, Job: v.Job, ID: v.ID, EventID: v.EventID,
		Reason: v.Reason, Handler: v.Handler, Target: v.Target, Truncated: v.Truncated,
	}
}
