package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports"
	"github.com/auditq/auditq/ports/streams"
)

// streamConfigs converts the configured streams (config.Stream has the
// fields of streams.StreamConfig).
func streamConfigs(cfg config.Config) []streams.StreamConfig {
	out := make([]streams.StreamConfig, len(cfg.Streams))
	for i, s := range cfg.Streams {
		out[i] = streams.StreamConfig(s)
	}
	return out
}

// activeStreams returns how many configured streams are not paused.
func activeStreams(cfg config.Config) int {
	n := 0
	for _, st := range cfg.Streams {
		if !st.Paused {
			n++
		}
	}
	return n
}

// startStreams starts delivering the log streams of AUDITQ_STREAMS_FILE
// (none: the runner only answers audit.streams with an empty list).
func (s *Service) startStreams(context.Context) error {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	runner, err := streams.New(streams.Config{
		Streams:        streamConfigs(s.cfg),
		Store:          s.streamStore,
		Owner:          fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		NATS:           s.pubConn,
		ProductVersion: ports.ReadBuild().Semver(),
		Personal:       s.personal,
		Registerer:     s.metrics.Registry,
		Logger:         s.log.With("component", "streams"),
	})
	if err != nil {
		return fmt.Errorf("AUDITQ_STREAMS_FILE: %w", err)
	}
	s.streams = runner
	runner.Start()
	s.onClose("log streams", runner.Stop)
	if n := len(s.cfg.Streams); n > 0 {
		s.log.Info("log streams started", "streams", n)
	}
	return nil
}
