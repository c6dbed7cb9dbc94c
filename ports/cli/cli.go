// Package cli implements auditq's client commands: each one a client of
// the running service's public contract on NATS (job subjects and request
// subjects), or, for verify, a reader of the stored trail.
package cli

import (
	"context"
	"fmt"
	"io"
)

// Deps is what the client commands reach: the service's NATS server, its
// schedules, and the trail verify reads. The composition root builds it
// from the configuration.
type Deps struct {
	Connect   Connector
	Schedules ScheduleLister
	Verify    VerifyDeps
	Poison    PoisonOpener
	// Publish holds the service's validation limits that "auditq publish"
	// checks files against before publishing.
	Publish PublishLimits
}

// Commands lists the client commands Run knows, in the order help shows
// them.
var Commands = []string{"publish", "cleanup", "schedule", "report", "query", "export", "verify", "checkpoint", "poison", "streams", "erase", "version"}

// Run runs client command name with its arguments, printing to out. It
// returns the command's error, or one naming an unknown command.
func Run(ctx context.Context, name string, args []string, deps Deps, out io.Writer) error {
	switch name {
	case "publish":
		return Publish(ctx, deps.Connect, deps.Publish, args, out)
	case "cleanup":
		return Cleanup(ctx, deps.Connect, args, out)
	case "schedule":
		return ScheduleCmd(ctx, deps.Schedules, args, out)
	case "report":
		return Report(ctx, deps.Connect, args, out)
	case "query":
		return Query(ctx, deps.Connect, args, out)
	case "export":
		return Export(ctx, deps.Connect, args, out)
	case "verify":
		return Verify(ctx, deps.Verify, args, out)
	case "checkpoint":
		return Checkpoint(ctx, deps.Connect, args, out)
	case "poison":
		return Poison(ctx, deps.Poison, args, out)
	case "erase":
		return Erase(ctx, deps.Connect, args, out)
	case "streams":
		return Streams(ctx, deps.Connect, args, out)
	case "version":
		return Version(args, out)
	}
	return fmt.Errorf("unknown command %q", name)
}
