package ports

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// WatermillLogger adapts l for Watermill like watermill.NewSlogLogger
// (Trace is watermill.LevelTrace), but checks the level before it converts
// the fields: the router traces every message, so building those
// attributes only to drop them would be per-message work for nothing.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter { return wmLogger{l} }

type wmLogger struct{ l *slog.Logger }

func (w wmLogger) log(level slog.Level, msg string, fields watermill.LogFields, err error) {
	ctx := context.Background()
	if !w.l.Enabled(ctx, level) {
		return
	}
	args := make([]any, 0, 2*len(fields)+2)
	for k, v := range fields {
		args = append(args, k, v)
	}
	if err != nil {
		args = append(args, "error", err)
	}
	w.l.Log(ctx, level, msg, args...)
}

func (w wmLogger) Error(msg string, err error, fields watermill.LogFields) {
	w.log(slog.LevelError, msg, fields, err)
}
func (w wmLogger) Info(msg string, fields watermill.LogFields) {
	w.log(slog.LevelInfo, msg, fields, nil)
}
func (w wmLogger) Debug(msg string, fields watermill.LogFields) {
	w.log(slog.LevelDebug, msg, fields, nil)
}
func (w wmLogger) Trace(msg string, fields watermill.LogFields) {
	w.log(watermill.LevelTrace, msg, fields, nil)
}

func (w wmLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return wmLogger{w.l.With(args...)}
}
