package natsjs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/domain/audit"
)

// HeaderReplayedFrom is set on a message replayed from the poison stream:
// "<stream>:<sequence>" of the poison message it re-drives. It travels on
// into the poison stream if the replay is rejected again.
const HeaderReplayedFrom = "poison_replayed_from"

// ErrPoisonNotFound: no message with that sequence in the poison stream
// (never there, replayed, discarded or aged out).
var ErrPoisonNotFound = errors.New("no such message in the poison stream")

// PoisonConfig configures a Poison.
type PoisonConfig struct {
	// Stream is the poison stream; default StreamPoison.
	Stream string
	// Prefix of the poison subjects, <Prefix><job> (audit.poison.).
	Prefix string
	// Jobs maps each job name of a poison subject to the job subject a
	// replay publishes to (log: audit.log).
	Jobs map[string]string
	// EventSubject receives a replayed rejected event of a bulk job: it is
	// one event (audit.log).
	EventSubject string
	// JobStream is the stream a replay must land in; default StreamAudit.
	JobStream string
	// TenantSubject, when set, returns the subject of job ("log", "bulk")
	// of tenant, and the tenant of an event subject (ok false for any
	// other): a tenant's message is replayed to its tenant's subject
	// (docs/tenants.md), never to the default tenant's.
	TenantSubject func(tenant, job string) string
	TenantOf      func(subject string) (job, tenant string, ok bool)
}

func (c *PoisonConfig) setDefaults() {
	if c.Stream == "" {
		c.Stream = StreamPoison
	}
	if c.JobStream == "" {
		c.JobStream = StreamAudit
	}
}

// Validate names the first missing setting.
func (c PoisonConfig) Validate() error {
	switch {
	case c.Prefix == "":
		return errors.New("natsjs poison: Prefix is empty")
	case len(c.Jobs) == 0:
		return errors.New("natsjs poison: Jobs is empty")
	case c.EventSubject == "":
		return errors.New("natsjs poison: EventSubject is empty")
	}
	return nil
}

// Poison reads and re-drives the poison stream: it lists and shows its
// messages by sequence (direct get: no consumer, no state changed),
// replays one to its job subject and removes it once the replay is stored,
// discards one, and measures the stream per job.
type Poison struct {
	js  jetstream.JetStream
	cfg PoisonConfig
}

// NewPoison returns a Poison on js, or cfg's validation error.
func NewPoison(js jetstream.JetStream, cfg PoisonConfig) (*Poison, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Poison{js: js, cfg: cfg}, nil
}

// PoisonMsg is one message of the poison stream.
type PoisonMsg struct {
	Seq     uint64
	Time    time.Time // when the poison stream stored it
	Subject string    // <prefix><job>
	Job     string
	// ID is the original message's id (header _watermill_message_uuid, else
	// Nats-Msg-Id): its Nats-Msg-Id when published, "AUDIT:<seq>" when it
	// had none, "<bulk id>:<index>" for a rejected event of a bulk job.
	ID string
	// EventID is the id the event would be stored under, "" when the
	// payload is not one event (a bulk, cleanup or report job) or has no
	// usable id.
	EventID string
	Reason  string // reason_poisoned
	Handler string // handler_poisoned
	// Target is the subject a replay publishes to, "" when unknown.
	Target string
	// Truncated: the payload was cut to fit the broker's limit
	// (payload_truncated); only a corrected payload can be replayed.
	Truncated bool
	Header    nats.Header // as stored
	Data      []byte
}

// PoisonFilter selects messages of the poison stream.
type PoisonFilter struct {
	Job    string // only this job's messages; "" for all
	Reason string // only messages whose reason contains this, case-insensitively
	Before uint64 // only messages with a lower sequence (the next page); 0 for no bound
	Limit  int    // at most this many; 0 for all
}

// Republished is a replay stored in the job stream.
type Republished struct {
	PoisonSeq uint64 // the poison message replayed
	Subject   string // the job subject
	Seq       uint64 // its sequence in the job stream
	ID        string // the message id it keeps
	MsgID     string // the replay's Nats-Msg-Id
	// Duplicate: the job stream had this replay already (an earlier replay
	// of the same message and payload that was not removed afterwards).
	Duplicate bool
}

// PoisonStat is one job's share of the poison stream.
type PoisonStat struct {
	Messages uint64
	Oldest   time.Time // when its oldest message was stored
}

func (p *Poison) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := p.js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", p.cfg.Stream, err)
	}
	return s, nil
}

// Get returns the poison message seq, or ErrPoisonNotFound.
func (p *Poison) Get(ctx context.Context, seq uint64) (PoisonMsg, error) {
	s, err := p.stream(ctx)
	if err != nil {
		return PoisonMsg{}, err
	}
	return p.get(ctx, s, seq)
}

func (p *Poison) get(ctx context.Context, s jetstream.Stream, seq uint64) (PoisonMsg, error) {
	if seq == 0 {
		return PoisonMsg{}, fmt.Errorf("%s %d: %w", p.cfg.Stream, seq, ErrPoisonNotFound)
	}
	rm, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return PoisonMsg{}, fmt.Errorf("%s %d: %w", p.cfg.Stream, seq, ErrPoisonNotFound)
	}
	if err != nil {
		return PoisonMsg{}, fmt.Errorf("get %s %d: %w", p.cfg.Stream, seq, err)
	}
	return p.parse(rm), nil
}

// directGetHeaders are added by a direct get to the stored headers.
var directGetHeaders = []string{
	jetstream.StreamHeader, jetstream.SequenceHeader, jetstream.TimeStampHeaer,
	jetstream.SubjectHeader, "Nats-Last-Sequence", "Nats-Num-Pending",
}

func (p *Poison) parse(rm *jetstream.RawStreamMsg) PoisonMsg {
	h := nats.Header{}
	for k, v := range rm.Header {
		h[k] = v
	}
	for _, k := range directGetHeaders {
		delete(h, k)
	}
	m := PoisonMsg{
		Seq: rm.Sequence, Time: rm.Time, Subject: rm.Subject,
		Job:       strings.TrimPrefix(rm.Subject, p.cfg.Prefix),
		ID:        h.Get(HeaderMessageID),
		Reason:    h.Get(middleware.ReasonForPoisonedKey),
		Handler:   h.Get(middleware.PoisonedHandlerKey),
		Truncated: h.Get(HeaderPayloadTruncated) != "",
		Header:    h,
		Data:      rm.Data,
	}
	if m.ID == "" {
		m.ID = h.Get(nats.MsgIdHdr)
	}
	m.Target = p.target(m)
	if job, _, ok := p.tenantOf(m.Target); m.Target == p.cfg.EventSubject || ok && job == p.cfg.EventSubject {
		m.EventID = audit.EventID(m.Data, m.ID) // of a cut payload: if before the cut
	}
	return m
}

// tenantOf is TenantOf, or not ok without it.
func (p *Poison) tenantOf(subject string) (job, tenant string, ok bool) {
	if p.cfg.TenantOf == nil {
		return "", "", false
	}
	return p.cfg.TenantOf(subject)
}

// target is where a replay of m goes: a rejected event of a bulk job as
// one event; anything else to the subject it was consumed from, else to
// its job's subject.
func (p *Poison) target(m PoisonMsg) string {
	if p.cfg.TenantSubject != nil && p.cfg.TenantOf != nil {
		if t := m.Header.Get(HeaderTenant); t != "" && m.Header.Get(HeaderBulkIndex) != "" {
			return p.cfg.TenantSubject(t, "log")
		}
		if s := m.Header.Get(MetaSubject); s != "" {
			if _, t, ok := p.cfg.TenantOf(s); ok && t != "" {
				return s
			}
		}
	}
	if m.Header.Get(HeaderBulkIndex) != "" {
		return p.cfg.EventSubject
	}
	topic := m.Header.Get(middleware.PoisonedTopicKey)
	for _, subj := range p.cfg.Jobs {
		if topic == subj {
			return subj
		}
	}
	return p.cfg.Jobs[m.Job]
}

// List returns the poison messages f selects, newest first. It reads
// backwards from the stream's last sequence (or from below f.Before), one direct get per sequence,
// and stops after f.Limit matches (or, filtered by job, once it has seen
// every message of that job).
func (p *Poison) List(ctx context.Context, f PoisonFilter) ([]PoisonMsg, error) {
	s, err := p.stream(ctx)
	if err != nil {
		return nil, err
	}
	state := s.CachedInfo().State
	subject := ""
	var remaining uint64 // messages of the job not seen yet
	if f.Job != "" {
		if _, ok := p.cfg.Jobs[f.Job]; !ok {
			return nil, fmt.Errorf("unknown job %q (one of %s)", f.Job, strings.Join(p.JobNames(), ", "))
		}
		subject = p.cfg.Prefix + f.Job
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", p.cfg.Stream, err)
		}
		state = info.State
		remaining = state.Subjects[subject]
		if remaining == 0 {
			return nil, nil
		}
	}
	reason := strings.ToLower(f.Reason)
	last := state.LastSeq
	if f.Before > 0 && f.Before-1 < last {
		last = f.Before - 1
	}
	var out []PoisonMsg
	for seq := last; seq >= state.FirstSeq && seq > 0; seq-- {
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		m, err := p.get(ctx, s, seq)
		if errors.Is(err, ErrPoisonNotFound) {
			continue // removed: replayed, discarded, or aged out meanwhile
		}
		if err != nil {
			return out, err
		}
		if subject != "" {
			if m.Subject != subject {
				continue
			}
			remaining--
		}
		if reason == "" || strings.Contains(strings.ToLower(m.Reason), reason) {
			out = append(out, m)
		}
		if subject != "" && remaining == 0 {
			break
		}
	}
	return out, nil
}

// JobNames returns the job names of the poison subjects, sorted.
func (p *Poison) JobNames() []string {
	names := make([]string, 0, len(p.cfg.Jobs))
	for j := range p.cfg.Jobs {
		names = append(names, j)
	}
	sort.Strings(names)
	return names
}

// replayDrops are the headers a poison copy has and its original had not:
// the poison reason and route, the subscriber's metadata, the message id
// (set again), the cut and an earlier replay's origin.
var replayDrops = map[string]bool{
	middleware.ReasonForPoisonedKey: true, middleware.PoisonedTopicKey: true,
	middleware.PoisonedHandlerKey: true, middleware.PoisonedSubscriberKey: true,
	MetaStream: true, MetaSequence: true, MetaSubject: true, MetaMsgID: true,
	MetaDelivered: true, MetaTimestamp: true, "nats_scheduler": true, "nats_schedule_next": true,
	HeaderMessageID: true, HeaderPayloadTruncated: true, HeaderReplayedFrom: true,
}

// Replay re-drives poison message seq: Republish, then Remove. A replay
// that is rejected again returns to the poison stream as a new message
// with its new reason. If the process dies between the two steps, the
// message is in both streams; replaying it again is harmless (see
// Republish).
func (p *Poison) Replay(ctx context.Context, seq uint64, data []byte) (Republished, error) {
	m, err := p.Get(ctx, seq)
	if err != nil {
		return Republished{}, err
	}
	r, err := p.Republish(ctx, m, data)
	if err != nil {
		return Republished{}, err
	}
	return r, p.Remove(ctx, seq)
}

// Republish publishes m (or data, a corrected payload, when not nil) to
// its job subject with its original headers and id, and waits for the job
// stream's ack. The message keeps its id in header _watermill_message_uuid
// (the service takes it as the message id: an event without an id field
// is stored under the id it would have had); its Nats-Msg-Id is
// "<id>~replay-<seq>", plus the payload's hash when corrected: the job
// stream may still remember the original's own Nats-Msg-Id (its duplicate
// window) and would drop the replay, while a repeated replay of the same
// message and payload is dropped as a duplicate. Beyond the window, the
// table's unique event id makes a second copy harmless.
func (p *Poison) Republish(ctx context.Context, m PoisonMsg, data []byte) (Republished, error) {
	if m.Target == "" {
		return Republished{}, fmt.Errorf("%s %d: no job subject to replay to (subject %s, topic %q)",
			p.cfg.Stream, m.Seq, m.Subject, m.Header.Get(middleware.PoisonedTopicKey))
	}
	msgID := m.ID
	if msgID == "" {
		msgID = p.cfg.Stream + ":" + strconv.FormatUint(m.Seq, 10)
	}
	replayID := msgID + "~replay-" + strconv.FormatUint(m.Seq, 10)
	switch {
	case data == nil && m.Truncated:
		return Republished{}, fmt.Errorf("%s %d: the payload was cut to fit the broker (payload_truncated: %s bytes); replay a corrected payload",
			p.cfg.Stream, m.Seq, m.Header.Get(HeaderPayloadTruncated))
	case data == nil:
		data = m.Data
	case !bytes.Equal(data, m.Data) || m.Truncated:
		sum := sha256.Sum256(data)
		replayID += "-" + hex.EncodeToString(sum[:6])
	}
	out := nats.NewMsg(m.Target)
	out.Data = data
	for k, v := range m.Header {
		if !replayDrops[k] && !strings.HasPrefix(k, "Nats-") {
			out.Header[k] = v
		}
	}
	out.Header.Set(HeaderMessageID, msgID)
	out.Header.Set(nats.MsgIdHdr, replayID)
	out.Header.Set(HeaderReplayedFrom, p.cfg.Stream+":"+strconv.FormatUint(m.Seq, 10))
	ack, err := p.js.PublishMsg(ctx, out, jetstream.WithExpectStream(p.cfg.JobStream))
	if err != nil {
		return Republished{}, fmt.Errorf("replay %s %d to %s: %w", p.cfg.Stream, m.Seq, m.Target, err)
	}
	return Republished{
		PoisonSeq: m.Seq, Subject: m.Target, Seq: ack.Sequence, ID: msgID, MsgID: replayID, Duplicate: ack.Duplicate,
	}, nil
}

// Remove deletes poison message seq; one already gone is no error.
func (p *Poison) Remove(ctx context.Context, seq uint64) error {
	s, err := p.stream(ctx)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		if _, gerr := p.get(ctx, s, seq); errors.Is(gerr, ErrPoisonNotFound) {
			return nil
		}
		return fmt.Errorf("remove %s %d: %w", p.cfg.Stream, seq, err)
	}
	return nil
}

// Discard deletes poison message seq and returns it, or ErrPoisonNotFound.
func (p *Poison) Discard(ctx context.Context, seq uint64) (PoisonMsg, error) {
	m, err := p.Get(ctx, seq)
	if err != nil {
		return PoisonMsg{}, err
	}
	return m, p.Remove(ctx, seq)
}

// Stats returns, per job with messages in the poison stream, how many it
// holds and when the oldest was stored.
func (p *Poison) Stats(ctx context.Context) (map[string]PoisonStat, error) {
	s, err := p.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(p.cfg.Prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", p.cfg.Stream, err)
	}
	out := make(map[string]PoisonStat, len(info.State.Subjects))
	var errs []error
	for subj, n := range info.State.Subjects {
		job := strings.TrimPrefix(subj, p.cfg.Prefix)
		st := PoisonStat{Messages: n}
		first, err := s.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(subj))
		switch {
		case err == nil:
			st.Oldest = first.Time
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			errs = append(errs, fmt.Errorf("oldest on %s: %w", subj, err))
		}
		out[job] = st
	}
	return out, errors.Join(errs...)
}
