package e2e

// The replicated-cluster damage test: three nats-server child processes of
// the pinned version (built from the module's own dependency) in one
// cluster on loopback, streams and consumers with three replicas, two
// "auditq serve" children and a careful publisher. The stream leader is
// killed with SIGKILL and restarted, the consumer leader steps down, one
// auditq instance is killed; every acknowledged event must end up in the
// table exactly once, and ingest must resume by itself.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/service/servicetest"
)

var (
	natsBinOnce sync.Once
	natsBinPath string
	natsBinErr  error
)

// natsServerBinary builds the nats-server of go.mod (the version auditq
// embeds) once per test run, next to the auditq binary so that TestMain
// removes it; it needs no network, only the module cache.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(auditqBinary(t))
	natsBinOnce.Do(func() {
		natsBinPath = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBinPath, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsBinErr != nil {
		t.Fatal(natsBinErr)
	}
	return natsBinPath
}

// natsNode is one nats-server child process of a test cluster. Its ports
// and store directory are fixed, so a restarted node comes back at the
// same address with the same data.
type natsNode struct {
	t          *testing.T
	name       string
	clientPort int
	confPath   string
	logPath    string
	cmd        *exec.Cmd
	done       chan struct{}
}

// startNATSCluster writes a configuration for each of n nodes (client and
// route ports on 127.0.0.1, JetStream store in a temporary directory,
// routes to every node), starts them, and waits until the cluster has a
// JetStream meta leader.
func startNATSCluster(t *testing.T, n int) []*natsNode {
	t.Helper()
	bin := natsServerBinary(t)
	clusterPorts := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		clusterPorts[i] = freePort(t)
		routes[i] = fmt.Sprintf("    nats-route://127.0.0.1:%d", clusterPorts[i])
	}
	dir := t.TempDir()
	nodes := make([]*natsNode, n)
	for i := range n {
		node := &natsNode{t: t, name: fmt.Sprintf("n%d", i+1), clientPort: freePort(t)}
		node.confPath = filepath.Join(dir, node.name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
}
cluster {
  name: auditq-test
  listen: 127.0.0.1:%d
  routes: [
%s
  ]
}
`, node.name, node.clientPort, filepath.Join(dir, node.name+"-store"), clusterPorts[i], strings.Join(routes, "\n"))
		if err := os.WriteFile(node.confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		node.logPath = filepath.Join(dir, node.name+".log")
		nodes[i] = node
		node.start(bin)
		t.Cleanup(func() {
			if node.running() {
				_ = node.cmd.Process.Kill()
				<-node.done
			}
			if t.Failed() {
				b, _ := os.ReadFile(node.logPath)
				t.Logf("nats-server %s output, last 3 KB:\n%s", node.name, tail(string(b), 3<<10))
			}
		})
	}
	nc, js := clusterClient(t, nodes)
	defer nc.Close()
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil, fmt.Sprintf("no JetStream meta leader: %v", err)
	})
	return nodes
}

// start launches the node (appending to its log) and waits until its
// client port accepts connections.
func (n *natsNode) start(bin string) {
	n.t.Helper()
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-c", n.confPath)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		_ = logFile.Close()
		n.t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	n.done = make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		_ = logFile.Close()
		close(n.done)
	}()
	servicetest.Eventually(n.t, 30*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", n.addr(), time.Second)
		if err != nil {
			return false, fmt.Sprintf("nats-server %s not listening: %v", n.name, err)
		}
		_ = c.Close()
		return true, ""
	})
}

func (n *natsNode) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.clientPort) }

func (n *natsNode) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill9 kills the node with SIGKILL and waits for it.
func (n *natsNode) kill9() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// clusterURL is the comma-separated client URL list of nodes, as
// AUDITQ_NATS_URL takes it.
func clusterURL(nodes []*natsNode) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = "nats://" + n.addr()
	}
	return strings.Join(urls, ",")
}

// clusterClient connects to any node of the cluster, reconnecting for
// ever; the caller closes it.
func clusterClient(t *testing.T, nodes []*natsNode) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(clusterURL(nodes), nats.Name("cluster-test"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// leaderOf returns the node leading stream (consumer empty) or one of its
// consumers, waiting until there is one.
func leaderOf(t *testing.T, js jetstream.JetStream, nodes []*natsNode, stream, consumer string) *natsNode {
	t.Helper()
	var leader *natsNode
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var ci *jetstream.ClusterInfo
		if consumer == "" {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return false, err.Error()
			}
			ci = s.CachedInfo().Cluster
		} else {
			c, err := js.Consumer(ctx, stream, consumer)
			if err != nil {
				return false, err.Error()
			}
			ci = c.CachedInfo().Cluster
		}
		if ci == nil {
			return false, "no cluster information"
		}
		for _, n := range nodes {
			if n.name == ci.Leader {
				leader = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s %s: no leader (%q)", stream, consumer, ci.Leader)
	})
	return leader
}

// waitCurrent waits until stream (consumer empty) or one of its consumers
// has replicas replicas, a leader, and every replica online and caught up.
func waitCurrent(t *testing.T, js jetstream.JetStream, stream, consumer string, replicas int, timeout time.Duration) {
	t.Helper()
	servicetest.Eventually(t, timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		name, configured := stream, 0
		var ci *jetstream.ClusterInfo
		if consumer == "" {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return false, err.Error()
			}
			configured, ci = s.CachedInfo().Config.Replicas, s.CachedInfo().Cluster
		} else {
			c, err := js.Consumer(ctx, stream, consumer)
			if err != nil {
				return false, err.Error()
			}
			name, configured, ci = consumer, c.CachedInfo().Config.Replicas, c.CachedInfo().Cluster
		}
		if configured != replicas || ci == nil || ci.Leader == "" || len(ci.Replicas) != replicas-1 {
			return false, fmt.Sprintf("%s: R%d, cluster %+v", name, configured, ci)
		}
		for _, p := range ci.Replicas {
			if !p.Current || p.Offline {
				return false, fmt.Sprintf("%s: replica %s current %t offline %t lag %d", name, p.Name, p.Current, p.Offline, p.Lag)
			}
		}
		return true, ""
	})
}

// rowWatch samples count(*) of audit_logs every 100 ms so that the stall
// of ingest around a failure can be read afterwards.
type rowWatch struct {
	mu      sync.Mutex
	samples []rowSample
	stop    chan struct{}
	done    chan struct{}
}

type rowSample struct {
	at   time.Time
	rows int
}

func watchRows(db *bun.DB) *rowWatch {
	w := &rowWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
			if n := rowCount(db); n >= 0 {
				w.mu.Lock()
				w.samples = append(w.samples, rowSample{time.Now(), n})
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *rowWatch) close() { close(w.stop); <-w.done }

// rowsGrewAfter returns how long after from the row count first exceeded
// its value at from plus margin rows (rows committed from messages in
// flight at from do not count as growth), or -1 if it has not.
func (w *rowWatch) rowsGrewAfter(from time.Time, margin int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	base := -1
	for _, s := range w.samples {
		if !s.at.After(from) {
			base = s.rows
			continue
		}
		if base < 0 {
			base = s.rows
		}
		if s.rows > base+margin {
			return s.at.Sub(from)
		}
	}
	return -1
}

// longestStall returns the longest time between two increases of the row
// count within [from, to].
func (w *rowWatch) longestStall(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	last, lastRows := from, -1
	for _, s := range w.samples {
		if s.at.Before(from) {
			lastRows = s.rows
			continue
		}
		if s.at.After(to) {
			break
		}
		if lastRows >= 0 && s.rows > lastRows {
			longest = max(longest, s.at.Sub(last))
			last = s.at
		}
		lastRows = s.rows
	}
	return max(longest, 0)
}

// failover is what one probe measured after a failure at began: when a
// publish started after it was first acknowledged (publishing resumed),
// when its row was stored (ingest resumed), and the publish attempts that
// failed meanwhile.
type failover struct {
	what            string
	began           time.Time
	publishResumed  time.Duration
	ingestResumed   time.Duration
	failedAttempts  int
	firstFailure    string
	longestAckDelay time.Duration
}

// probe publishes one event with id right after a failure, with short
// attempts (500 ms each) so that the moment JetStream accepts again is
// measured closely, retried until acknowledged; the acked id joins pub's
// list (it counts for the exactly-once check). It then waits for the row.
func probe(t *testing.T, pub *carefulPublisher, db *bun.DB, what, id string, began time.Time) failover {
	t.Helper()
	f := failover{what: what, began: began}
	deadline := began.Add(2 * time.Minute)
	for {
		m := nats.NewMsg("audit.log")
		m.Data = chaosEvent(id, 0)
		m.Header.Set(nats.MsgIdHdr, id)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		sent := time.Now()
		ack, err := pub.js.PublishMsg(ctx, m)
		cancel()
		if err == nil && ack.Stream == natsjs.StreamAudit {
			f.publishResumed = time.Since(began)
			f.longestAckDelay = time.Since(sent)
			pub.mu.Lock()
			pub.acked = append(pub.acked, id)
			pub.mu.Unlock()
			break
		}
		f.failedAttempts++
		if f.firstFailure == "" {
			f.firstFailure = fmt.Sprint(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: probe %s not acknowledged within 2 minutes: %v", what, id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM audit_logs WHERE id = ?", id).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n == 1, fmt.Sprintf("%s: probe %s acknowledged but not stored", what, id)
	})
	f.ingestResumed = time.Since(began)
	time.Sleep(2 * time.Second)
	return f
}

// stepDownConsumer asks the leader of a consumer to step down through the
// JetStream API, until the API reports success.
func stepDownConsumer(t *testing.T, nc *nats.Conn, stream, consumer string) {
	t.Helper()
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		msg, err := nc.Request(fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", stream, consumer), nil, 5*time.Second)
		if err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return false, err.Error()
		}
		return resp.Success, fmt.Sprintf("consumer stepdown: %s", msg.Data)
	})
}

// logConsumer is the durable consumer of audit.log.
var logConsumer = natsjs.ConsumerName("audit.log")

// killNATSNode SIGKILLs node (what it leads, for the log), measures with a
// probe when publishing and ingest resumed (when it leads stream AUDIT,
// the probe's first attempts must fail), checks rows grow again, leaves
// the node down for 5 s, restarts it and waits until its replicas of
// stream AUDIT and consumer auditq-log have caught up.
func killNATSNode(t *testing.T, js jetstream.JetStream, nodes []*natsNode, node *natsNode, leadsStream bool, what, probeID string,
	pub *carefulPublisher, db *bun.DB, rows *rowWatch) failover {
	t.Helper()
	before := fmt.Sprintf("stream led by %s, consumer by %s", leaderOf(t, js, nodes, natsjs.StreamAudit, "").name,
		leaderOf(t, js, nodes, natsjs.StreamAudit, logConsumer).name)
	retries := pub.retries.Load()
	began := time.Now()
	node.kill9()
	t.Logf("SIGKILL nats-server %s, %s (%s); %d rows", node.name, what, before, rowCount(db))
	f := probe(t, pub, db, fmt.Sprintf("nats-server %s (%s) killed", node.name, what), probeID, began)
	if leadsStream && f.failedAttempts == 0 {
		// A stream without its leader waits at least the minimum Raft
		// election timeout (4 s) for a new one: a publish meanwhile must
		// fail (and be retried), not be acknowledged.
		t.Fatalf("a publish right after the stream leader died was acknowledged at once (after %s)", f.publishResumed)
	}
	streamLeader := leaderOf(t, js, nodes, natsjs.StreamAudit, "")
	consumerLeader := leaderOf(t, js, nodes, natsjs.StreamAudit, logConsumer)
	if streamLeader == node || consumerLeader == node {
		t.Fatalf("the killed node %s still leads stream AUDIT or consumer %s", node.name, logConsumer)
	}
	f.what += fmt.Sprintf(", then stream led by %s, consumer by %s", streamLeader.name, consumerLeader.name)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		return rows.rowsGrewAfter(began.Add(f.ingestResumed), 100) >= 0, fmt.Sprintf("rows did not grow after %s was killed", node.name)
	})
	time.Sleep(5 * time.Second) // a few seconds with the node down
	restarted := time.Now()
	node.start(natsServerBinary(t))
	waitCurrent(t, js, natsjs.StreamAudit, "", 3, 2*time.Minute)
	waitCurrent(t, js, natsjs.StreamAudit, logConsumer, 3, 2*time.Minute)
	t.Logf("nats-server %s restarted; its replicas caught up after %s; publish attempts retried meanwhile: %d",
		node.name, time.Since(restarted).Round(time.Millisecond), pub.retries.Load()-retries)
	return f
}

// On a 3-node cluster, "auditq serve" asked for 5 replicas exits with an
// error naming the problem. With R3 streams and two auditq instances, while a
// careful publisher runs at 500 events/s: SIGKILL the AUDIT stream's
// leader node and restart it, the same for the node leading the consumer
// of audit.log, step that consumer's leader down, SIGKILL one auditq
// instance. After each, a probe event published right after the
// failure measures when publishing and ingest resumed; at the end every
// acknowledged event is in audit_logs exactly once.
func TestClusterFailoverR3LosesNothing(t *testing.T) {
	skipIfShort(t)
	const rate = 500
	dbURL := pgtest.NewDatabase(t)
	nodes := startNATSCluster(t, 3)
	nc, js := clusterClient(t, nodes)
	t.Cleanup(nc.Close)

	envA := childEnv(t, dbURL)
	envA["AUDITQ_NATS_URL"] = clusterURL(nodes)
	envA["AUDITQ_NATS_REPLICAS"] = "3"
	envB := maps.Clone(envA) // the same data directory: one signing key
	envB["AUDITQ_HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	db := servicetest.OpenDB(t, envA)

	// More replicas than servers: the start fails, saying why.
	env5 := maps.Clone(envA)
	env5["AUDITQ_NATS_REPLICAS"] = "5"
	r5 := launchChild(t, "serve-r5", env5)
	select {
	case <-r5.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("auditq serve with AUDITQ_NATS_REPLICAS=5 on 3 servers still runs after 2 minutes")
	}
	if code, out := r5.exitCode(), r5.output(); code != 1 || !strings.Contains(out, "5 replicas need at least 5 JetStream servers online") {
		t.Fatalf("auditq serve with AUDITQ_NATS_REPLICAS=5 on 3 servers: exit code %d, output:\n%s", code, out)
	} else {
		t.Logf("AUDITQ_NATS_REPLICAS=5 on 3 servers: %s", strings.TrimSpace(out))
	}

	a := launchChild(t, "serve-a", envA)
	b := launchChild(t, "serve-b", envB)
	a.waitReady(2 * time.Minute)
	b.waitReady(2 * time.Minute)
	for _, stream := range []string{natsjs.StreamAudit, natsjs.StreamPoison, natsjs.StreamResults, natsjs.StreamCheckpoints} {
		waitCurrent(t, js, stream, "", 3, 60*time.Second)
	}

	rows := watchRows(db)
	defer rows.close()
	pub := newCarefulPublisher(t, clusterURL(nodes))
	stop := pub.run("cluster", rate, 16, 0)
	const ingested = `auditq_events_ingested_total{handler="audit.log"}`
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		byA, byB := a.metric(ingested), b.metric(ingested)
		return byA >= 500 && byB >= 500, fmt.Sprintf("ingested: serve-a %v, serve-b %v", byA, byB)
	})
	var results []failover

	// 1. SIGKILL the node leading stream AUDIT, then restart it.
	leader := leaderOf(t, js, nodes, natsjs.StreamAudit, "")
	results = append(results, killNATSNode(t, js, nodes, leader, true, "leader of stream AUDIT", "probe-stream-leader", pub, db, rows))

	// 2. SIGKILL the node leading consumer auditq-log (pull requests
	// waiting there are lost with it), then restart it.
	leader = leaderOf(t, js, nodes, natsjs.StreamAudit, logConsumer)
	leadsStream := leader == leaderOf(t, js, nodes, natsjs.StreamAudit, "")
	results = append(results, killNATSNode(t, js, nodes, leader, leadsStream, "leader of consumer "+logConsumer, "probe-consumer-leader", pub, db, rows))

	// 3. The consumer leader steps down.
	consumerLeader := leaderOf(t, js, nodes, natsjs.StreamAudit, logConsumer)
	began := time.Now()
	stepDownConsumer(t, nc, natsjs.StreamAudit, logConsumer)
	f := probe(t, pub, db, "consumer leader "+consumerLeader.name+" stepped down", "probe-consumer-stepdown", began)
	if next := leaderOf(t, js, nodes, natsjs.StreamAudit, logConsumer); next == consumerLeader {
		t.Fatalf("consumer audit.log still led by %s after its stepdown", next.name)
	} else {
		f.what += ", new leader " + next.name
	}
	results = append(results, f)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		return rows.rowsGrewAfter(began.Add(f.ingestResumed), 100) >= 0, "rows did not grow after the consumer stepdown"
	})

	// 4. SIGKILL one auditq instance; the other takes over its messages
	// after the ack wait (5 s).
	beforeB := b.metric(ingested)
	began = time.Now()
	a.kill9()
	f = probe(t, pub, db, "auditq instance serve-a killed", "probe-instance-killed", began)
	results = append(results, f)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := b.metric(ingested)
		return n >= beforeB+1000, fmt.Sprintf("serve-b ingested %v since serve-a was killed", n-beforeB)
	})

	ids := stop()
	waitRows(t, db, len(ids), 3*time.Minute)
	assertExactlyOnce(t, db, ids)
	if !b.running() {
		t.Fatal("serve-b exited")
	}
	for _, f := range results {
		stall := rows.longestStall(f.began, f.began.Add(f.ingestResumed+2*time.Second))
		t.Logf("%s: publishing resumed after %s (%d failed 500 ms attempts, first: %s; the acked attempt took %s), ingest after %s; longest time without a new row: %s",
			f.what, f.publishResumed.Round(time.Millisecond), f.failedAttempts, f.firstFailure, f.longestAckDelay.Round(time.Millisecond),
			f.ingestResumed.Round(time.Millisecond), stall.Round(100*time.Millisecond))
	}
	// Ingest resumes by itself: after a node's death within a few Raft
	// election timeouts (4-9 s each) plus two missed pull heartbeats (4 s);
	// after a stepdown or an instance's death at once.
	for i, f := range results {
		bound := 25 * time.Second
		if i >= 2 {
			bound = 10 * time.Second
		}
		if f.ingestResumed > bound {
			t.Errorf("%s: ingest resumed only after %s, want within %s", f.what, f.ingestResumed.Round(time.Millisecond), bound)
		}
	}
	t.Logf("%d events acknowledged and stored exactly once; %d publish attempts of the careful publisher retried; serve-b: %v duplicates",
		len(ids), pub.retries.Load(), b.metric(`auditq_events_duplicate_total{handler="audit.log"}`))
}
