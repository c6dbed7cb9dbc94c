// Package command holds the write use cases of auditq.
package command

import (
	"context"
	"fmt"

	"github.com/auditq/auditq/domain/audit"
)

// RecordEventsHandler records validated events idempotently.
type RecordEventsHandler struct {
	writer audit.Writer
}

// NewRecordEventsHandler returns a handler writing through w (the
// repository, or a group-commit batcher in front of it).
func NewRecordEventsHandler(w audit.Writer) RecordEventsHandler {
	return RecordEventsHandler{writer: w}
}

// Handle stores events; on error none of them is stored and the error is
// transient unless audit.IsPermanent says otherwise.
func (h RecordEventsHandler) Handle(ctx context.Context, events []audit.Event) (audit.WriteResult, error) {
	res, err := h.writer.Write(ctx, events)
	if err != nil {
		return res, fmt.Errorf("record %d events: %w", len(events), err)
	}
	return res, nil
}

// HandleEach stores each event on its own: results[i] and errs[i] are
// event i's (an error is transient unless audit.IsPermanent says
// otherwise). Through an audit.EachWriter the events share the writer's
// batches; through any other writer they are written one after another.
func (h RecordEventsHandler) HandleEach(ctx context.Context, events []audit.Event) ([]audit.WriteResult, []error) {
	if w, ok := h.writer.(audit.EachWriter); ok {
		results, errs := w.WriteEach(ctx, events)
		for i, err := range errs {
			if err != nil {
				errs[i] = fmt.Errorf("record event %s: %w", events[i].ID, err)
			}
		}
		return results, errs
	}
	results, errs := make([]audit.WriteResult, len(events)), make([]error, len(events))
	for i := range events {
		results[i], errs[i] = h.Handle(ctx, events[i:i+1])
	}
	return results, errs
}
