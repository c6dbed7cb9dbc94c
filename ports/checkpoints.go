package ports

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/auditq/auditq/app/command"
)

// CheckpointWriter writes one tamper-evidence checkpoint.
type CheckpointWriter interface {
	Handle(ctx context.Context, reason string) (command.CheckpointResult, error)
}

// Checkpoints drives the checkpoint writer: once at start, every interval
// (also when no event arrived: an unchanged trail is signed again, so a
// cut tail cannot hide behind silence), and once at Stop.
type Checkpoints struct {
	w        CheckpointWriter
	interval time.Duration
	log      *slog.Logger
	metrics  *Metrics
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// CheckpointsConfig configures Checkpoints.
type CheckpointsConfig struct {
	// Interval is the time between periodic checkpoints.
	Interval time.Duration
	// Logger gets the outcome of each checkpoint; nil means slog.Default().
	Logger *slog.Logger
	// Metrics gets the time of each checkpoint written
	// (auditq_last_checkpoint_timestamp_seconds); nil records nothing.
	Metrics *Metrics
}

func (c *CheckpointsConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate returns an error for an interval that is not positive.
func (c CheckpointsConfig) Validate() error {
	if c.Interval <= 0 {
		return fmt.Errorf("checkpoints: Interval must be positive, got %s", c.Interval)
	}
	return nil
}

// StartCheckpoints starts writing checkpoints through w: one now, then
// every interval. It returns cfg's validation error without starting.
func StartCheckpoints(w CheckpointWriter, cfg CheckpointsConfig) (*Checkpoints, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Checkpoints{w: w, interval: cfg.Interval, log: cfg.Logger, metrics: cfg.Metrics, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *Checkpoints) run() {
	defer close(c.done)
	c.write(command.CheckpointStart)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.write(command.CheckpointPeriodic)
		case <-c.stop:
			return
		}
	}
}

// write writes one checkpoint and logs the outcome; a failure is logged and
// made up for by the next one.
func (c *Checkpoints) write(reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.w.Handle(ctx, reason)
	cp := res.Checkpoint
	if res.Tampered != "" {
		c.log.Error("tamper evidence: the stored trail contradicts what was committed; the checkpoint signs what this instance knows",
			"checkpoint", cp.Seq, "problems", res.Tampered)
	}
	if cp.Seq != 0 { // stored, even if not yet published
		c.metrics.CheckpointWritten(cp.Time)
	}
	if err != nil {
		c.log.Error("checkpoint failed; the next one makes up for it", "reason", reason, "err", err)
		return
	}
	c.log.Info("checkpoint written", "seq", cp.Seq, "reason", reason, "batches", cp.BatchSeq, "deletions", cp.DeletionSeq)
}

// Stop ends the periodic checkpoints and writes the shutdown checkpoint.
// Call it after the last write has committed. It is idempotent.
func (c *Checkpoints) Stop() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.write(command.CheckpointShutdown)
	})
}
