package natsjs_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
)

// TestEnsureAddsSubjectsAfterARestart: a topology that gains subjects for a
// job's consumer (tenants switched on) after the server restarted on its
// store gets them on the stream and the consumer, which then delivers a
// message of the new subject. nats-server 2.15.2 answers that first update
// with the old configuration; Ensure asks again.
func TestEnsureAddsSubjectsAfterARestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	topo := natsjs.Topology{JobSubjects: []string{"audit.log", "audit.bulk"}, PoisonSubjects: "audit.poison.>", ResultSubjects: "audit.results.>",
		ResultsMaxMsgs: 10, PoisonMaxMsgs: 10, PoisonMaxBytes: 1 << 20, DuplicateWindow: time.Minute, AckWait: 30 * time.Second, MaxAckPending: 10}
	for run := range 2 {
		srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		if run == 1 {
			topo.AlsoFor = map[string][]string{"audit.log": {"audit.t.*.log"}}
			topo.MoreResultSubjects = []string{"audit.t.*.results.bulk"}
		}
		if err := natsjs.Ensure(ctx, js, topo); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if run == 1 {
			s, err := js.Stream(ctx, natsjs.StreamAudit)
			if err != nil {
				t.Fatal(err)
			}
			if subj := s.CachedInfo().Config.Subjects; !slices.Contains(subj, "audit.t.*.log") {
				t.Errorf("stream subjects %v", subj)
			}
			if _, err := js.Publish(ctx, "audit.t.acme.log", []byte("{}")); err != nil {
				t.Fatal(err)
			}
			c, err := js.Consumer(ctx, natsjs.StreamAudit, natsjs.ConsumerName("audit.log"))
			if err != nil {
				t.Fatal(err)
			}
			if f := c.CachedInfo().Config.FilterSubjects; !slices.Equal(f, []string{"audit.log", "audit.t.*.log"}) {
				t.Errorf("consumer filters %v", f)
			}
			m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil || m.Subject() != "audit.t.acme.log" {
				t.Fatalf("next: %v %v", m, err)
			}
			if r, err := js.Stream(ctx, natsjs.StreamResults); err != nil || !slices.Contains(r.CachedInfo().Config.Subjects, "audit.t.*.results.bulk") {
				t.Errorf("results stream: %v", err)
			}
		}
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}
