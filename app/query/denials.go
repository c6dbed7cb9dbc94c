package query

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// ActionDenied is the action of the events recording refused reads: a
// request answered 403 (docs/tenants.md, docs/contract.md "Reads are
// audited").
const ActionDenied = "audit.denied"

// Bounds of the denial records (DenialAuditor).
const (
	// DefaultDenialWindow is how long refusals are counted before they are
	// written: at most one event per identity, endpoint and rule per
	// window.
	DefaultDenialWindow = time.Minute
	// MaxDenialKeys bounds the identities, endpoints and rules counted in
	// one window; refusals beyond are counted together in one more event.
	MaxDenialKeys = 1000
)

// DenialAuditor records refused reads as events in the trail, aggregated
// so that a client cannot flood the table: refusals of the same identity
// (account and user the server vouched for), endpoint and rule are counted
// in memory for a window and written as one event with their count, the
// first request and the time of the first and last refusal. At most
// MaxDenialKeys such counts are held; further refusals in that window are
// counted in a single event of their own. A refusal of a reader bound to
// a tenant is recorded in its tenant (a tenant sees what its readers were
// refused, never what another tenant's were), any other in the default
// tenant. The zero value and one over a ReadAuditor that records nothing
// record nothing.
type DenialAuditor struct {
	reads  ReadAuditor
	window time.Duration

	mu      sync.Mutex
	pending map[denialKey]*denial
	stop    chan struct{}
	done    chan struct{}
}

// denialKey is what refusals are counted by.
type denialKey struct {
	tenant, account, user, endpoint, rule string
}

// denial is the count of one key in the current window.
type denial struct {
	first       read
	rule        error
	count       int
	firstAt, at time.Time
}

// overflowKey counts the refusals beyond MaxDenialKeys.
var overflowKey = denialKey{endpoint: "(many)", rule: "refusals beyond the distinct ones counted in this window"}

// NewDenialAuditor returns a DenialAuditor writing through reads every
// window (zero: DefaultDenialWindow); Start starts it, Close stops it
// and writes what it holds.
func NewDenialAuditor(reads ReadAuditor, window time.Duration) *DenialAuditor {
	if window <= 0 {
		window = DefaultDenialWindow
	}
	return &DenialAuditor{reads: reads, window: window, pending: map[denialKey]*denial{}}
}

// Denied counts one refusal of a request to endpoint with body request
// from who; err is the refusal (a *audit.ForbiddenError; anything else is
// not counted). It never blocks on the database.
func (d *DenialAuditor) Denied(who Requester, endpoint string, request any, err error) {
	var f *audit.ForbiddenError
	if d == nil || d.reads.writer == nil || !errors.As(err, &f) {
		return
	}
	k := denialKey{endpoint: endpoint, rule: f.Error()}
	if who.Scope.Bound {
		k.tenant = who.Scope.Tenant
	}
	if v := who.Verified; v != nil {
		k.account, k.user = v.Account, v.User
	}
	now := d.reads.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.pending[k]; !ok && len(d.pending) >= MaxDenialKeys {
		k = overflowKey
	}
	p := d.pending[k]
	if p == nil {
		p = &denial{first: read{action: ActionDenied, endpoint: endpoint, request: request, who: who}, rule: f, firstAt: now}
		if k == overflowKey {
			p.first = read{action: ActionDenied, endpoint: overflowKey.endpoint}
			p.rule = audit.Forbidden("(request)", "%s", overflowKey.rule)
		}
		d.pending[k] = p
	}
	p.count++
	p.at = now
}

// Start writes the counts every window, in a goroutine that Close ends.
func (d *DenialAuditor) Start() {
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		t := time.NewTicker(d.window)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				d.flush(context.Background())
			case <-d.stop:
				return
			}
		}
	}()
}

// Close stops the goroutine of Start and writes the counts held.
func (d *DenialAuditor) Close(ctx context.Context) {
	if d.stop != nil {
		close(d.stop)
		<-d.done
	}
	d.flush(ctx)
}

// flush writes one event per count held and starts a new window. A count
// whose event cannot be written is lost, as the record of a failed read
// is (ReadAuditor.record).
func (d *DenialAuditor) flush(ctx context.Context) {
	d.mu.Lock()
	pending := d.pending
	d.pending = map[denialKey]*denial{}
	d.mu.Unlock()
	for _, p := range pending {
		r := p.first
		r.extra = map[string]any{
			"refused": p.count, "firstAt": p.firstAt.UTC().Format(time.RFC3339Nano), "lastAt": p.at.UTC().Format(time.RFC3339Nano),
		}
		_ = d.reads.record(ctx, r, p.rule)
	}
}
