package ports

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestWatermillLoggerKeepsLevelsAndFields(t *testing.T) {
	var buf bytes.Buffer
	l := WatermillLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l = l.With(watermill.LogFields{"component": "router"})
	l.Trace("dropped below debug", watermill.LogFields{"x": 1})
	l.Debug("debug line", watermill.LogFields{"handler": "log"})
	l.Error("error line", errors.New("boom"), watermill.LogFields{"topic": "audit.log"})
	out := buf.String()
	if strings.Contains(out, "dropped") {
		t.Errorf("trace message logged at debug level:\n%s", out)
	}
	for _, want := range []string{
		`level=DEBUG msg="debug line" component=router handler=log`,
		`level=ERROR msg="error line" component=router topic=audit.log error=boom`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
