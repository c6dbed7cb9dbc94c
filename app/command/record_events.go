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
