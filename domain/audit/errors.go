// Package audit holds the audit-trail domain: the Event, its validation rules,
// and the interfaces the application needs from storage.
package audit

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned by lookups when no row matches.
var ErrNotFound = errors.New("not found")

// ValidationError says which field broke which rule. It is permanent: the
// same input fails the same way on every attempt, so it is never retried.
type ValidationError struct {
	Field string // JSON path of the field, e.g. "action" or "events[3].ipAddress"
	Rule  string // what the field must be, e.g. "must be a non-empty string"
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Rule }

// Invalid builds a ValidationError for field with a formatted rule.
func Invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err can never succeed on retry: a validation
// error or any error wrapping ErrPermanent.
func IsPermanent(err error) bool {
	var v *ValidationError
	return errors.As(err, &v) || errors.Is(err, ErrPermanent)
}

// ErrPermanent marks a failure that retrying cannot fix (for example a row the
// database rejects for its content). Wrap it to route a message to the poison
// stream instead of retrying.
var ErrPermanent = errors.New("permanent failure")
