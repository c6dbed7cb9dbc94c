package cli

import "errors"

// Exit codes of the auditq commands.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the command failed; for verify, tampering was found
	ExitUsage   = 2 // the command line cannot work (ErrUsage)
	ExitPending = 3 // verify --event: sealed, not yet covered by a signed checkpoint (ErrPending)
)

// ExitCode returns the exit code for what a command returned.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrPending):
		return ExitPending
	case errors.Is(err, ErrUsage):
		return ExitUsage
	default:
		return ExitFailed
	}
}
