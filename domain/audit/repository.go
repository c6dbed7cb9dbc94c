package audit

import "context"

// WriteResult counts what one write did: rows added, and events whose id was
// already stored (redeliveries and re-publishes), which add nothing.
type WriteResult struct {
	Inserted   int
	Duplicates int
}

// Add returns the sum of two results.
func (r WriteResult) Add(o WriteResult) WriteResult {
	return WriteResult{Inserted: r.Inserted + o.Inserted, Duplicates: r.Duplicates + o.Duplicates}
}

// Writer stores events idempotently: an event whose id is already stored is
// counted as a duplicate and changes nothing. Either every event of the call
// is committed or, on error, none is.
type Writer interface {
	Write(ctx context.Context, events []Event) (WriteResult, error)
}

// EachWriter is a Writer that can also take many events as separate
// writes in one call (group commit): each event is committed or fails on
// its own, with its own result and error, in order.
type EachWriter interface {
	Writer
	WriteEach(ctx context.Context, events []Event) ([]WriteResult, []error)
}
