package cli

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestExitCodes(t *testing.T) {
	for err, want := range map[error]int{
		nil:                                      ExitOK,
		errors.New("boom"):                       ExitFailed,
		ErrVerifyFailed:                          ExitFailed,
		usagef("--x: bad"):                       ExitUsage,
		&ServiceError{Code: "400"}:               ExitUsage,
		&ServiceError{Code: "404"}:               ExitFailed,
		&NotRunningError{Err: nats.ErrNoServers}: ExitFailed,
		errors.Join(errors.New("verify"), ErrPending): ExitPending,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
	var out bytes.Buffer
	if err := Query(context.Background(), noConnect(t), []string{"--no-such-flag"}, &out); ExitCode(err) != ExitUsage {
		t.Errorf("unknown flag: %v", err)
	}
}
