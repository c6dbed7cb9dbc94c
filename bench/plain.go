package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/e2e/harness"
)

var prefillColumns = []string{"id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address",
	"user_agent", "session_id", "request_id", "success", "error_message", "occurred_at", "received_at"}

// prefill COPYs n synthetic rows, spread evenly over the last 365 days in
// time order, into
// audit_logs, marks their hours changed for the report rollups, then
// VACUUMs and ANALYZEs it, as autovacuum would have long since in a running
// service (else autovacuum's first pass over the table lands in whichever
// measurement happens to run then).
func prefill(ctx context.Context, dbURL string, n int) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	now := time.Now().UTC()
	span := int64(365 * 24 * time.Hour)
	details := `{"field":"settings.name","old":"alpha","new":"beta"}`
	ip := netip.MustParseAddr("198.51.100.7")
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		// Oldest first, evenly over the last year: rows arrive in time
		// order in a running service, and so lie in the table.
		at := now.Add(-time.Duration(span - span/int64(n)*int64(i)))
		var user any = "user-" + strconv.Itoa(i%1000)
		if i%50 == 0 {
			user = nil
		}
		return []any{"pre-" + strconv.Itoa(i), user, actions[i%len(actions)], resourceTypes[i%len(resourceTypes)],
			"res-" + strconv.Itoa(i%5000), details, ip, "Mozilla/5.0", "sess", "req-" + strconv.Itoa(i), i%17 != 0, nil, at, at}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"audit_logs"}, prefillColumns, src); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	// Rows written around the repository must mark their hours changed,
	// as every write does, or a report could trust a stale hour rollup;
	// the service's roller then rolls them up.
	if _, err := conn.Exec(ctx, `INSERT INTO audit_hours (hour)
		SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC') FROM audit_logs ORDER BY 1
		ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1`); err != nil {
		return fmt.Errorf("prefill: mark hours changed: %w", err)
	}
	_, err = conn.Exec(ctx, "VACUUM (ANALYZE) audit_logs")
	return err
}

// plainEvent is the plain pipeline's decoding target: encoding/json, no
// validation beyond types.
type plainEvent struct {
	ID           string          `json:"id"`
	UserID       *string         `json:"userId"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resourceType"`
	ResourceID   string          `json:"resourceId"`
	Details      json.RawMessage `json:"details"`
	IPAddress    *string         `json:"ipAddress"`
	UserAgent    *string         `json:"userAgent"`
	SessionID    *string         `json:"sessionId"`
	RequestID    *string         `json:"requestId"`
	Success      *bool           `json:"success"`
	ErrorMessage *string         `json:"errorMessage"`
	Timestamp    *time.Time      `json:"timestamp"`
}

// plainPipeline is the no-framework design the issue describes: pull
// fetch of 1,000-message batches, encoding/json decoding, COPY into a
// staging table, INSERT ... ON CONFLICT DO NOTHING into a table with five
// indexes, one explicit ack per message after the commit. It runs on its
// own in-process nats-server and its own table, plain_logs, in the
// measured service's database; the benchmark measures it in every round
// next to the service's singles (plainPipeline.throughput).
type plainPipeline struct {
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
	conn *pgx.Conn
}

// newPlainPipeline starts the plain pipeline's nats-server (its store in
// dir), stream and consumer, and creates plain_logs and its staging table
// in dbURL's database. Close releases them.
func newPlainPipeline(ctx context.Context, dbURL, dir string) (_ *plainPipeline, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	srv, err := harness.StartNATS(harness.NATSConfig{StoreDir: dir, ReadyTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("plain pipeline: %w", err)
	}
	p := &plainPipeline{srv: srv}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.nc, err = nats.Connect(srv.ClientURL()); err != nil {
		return nil, err
	}
	if p.js, err = jetstream.New(p.nc, jetstream.WithPublishAsyncMaxPending(8192)); err != nil {
		return nil, err
	}
	if _, err := p.js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.log"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		return nil, err
	}
	if p.cons, err = p.js.CreateConsumer(ctx, "PLAIN", jetstream.ConsumerConfig{Durable: "plain", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10000}); err != nil {
		return nil, err
	}
	if p.conn, err = pgx.Connect(ctx, dbURL); err != nil {
		return nil, err
	}
	for _, q := range []string{
		`CREATE TABLE plain_logs (LIKE audit_logs INCLUDING DEFAULTS, PRIMARY KEY (id))`,
		`CREATE INDEX ON plain_logs (occurred_at)`,
		`CREATE INDEX ON plain_logs (user_id)`,
		`CREATE INDEX ON plain_logs (action)`,
		`CREATE INDEX ON plain_logs (resource_type, resource_id)`,
		`CREATE TEMP TABLE plain_staging (LIKE plain_logs INCLUDING DEFAULTS)`,
	} {
		if _, err := p.conn.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("plain pipeline: %s: %w", q, err)
		}
	}
	return p, nil
}

func (p *plainPipeline) close() {
	if p.conn != nil {
		_ = p.conn.Close(context.Background())
	}
	if p.nc != nil {
		p.nc.Close()
	}
	p.srv.Shutdown()
}

// catchUp copies into plain_logs rows of audit_logs it lacks until it holds
// as many rows as audit_logs, so that each plain round writes into a table
// and indexes as large as the ones the service's round writes into. It
// returns the rows copied.
func (p *plainPipeline) catchUp(ctx context.Context) (int64, error) {
	tag, err := p.conn.Exec(ctx, `INSERT INTO plain_logs SELECT a.* FROM audit_logs a
		WHERE NOT EXISTS (SELECT 1 FROM plain_logs p WHERE p.id = a.id)
		LIMIT GREATEST((SELECT count(*) FROM audit_logs) - (SELECT count(*) FROM plain_logs), 0)`)
	if err != nil {
		return 0, fmt.Errorf("plain pipeline: catch up with audit_logs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// throughput publishes n events to the plain pipeline and returns events/s
// from the first publish until the last one is committed and acked.
func (p *plainPipeline) throughput(ctx context.Context, n int, prefix string) (float64, error) {
	msgs := messages("plain.log", n, 1, fmt.Sprintf("plain-%s-%d-", prefix, time.Now().UnixNano()))
	start := time.Now()
	go func() {
		for _, m := range msgs {
			if _, err := p.js.PublishMsgAsync(m, stall); err != nil {
				return
			}
		}
	}()
	done := 0
	for done < n {
		batch, err := p.cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return 0, err
		}
		var got []jetstream.Msg
		var rows [][]any
		for m := range batch.Messages() {
			var e plainEvent
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				return 0, err
			}
			var ip any
			if e.IPAddress != nil {
				ip = netip.MustParseAddr(*e.IPAddress)
			}
			success := e.Success == nil || *e.Success
			at := time.Now()
			if e.Timestamp != nil {
				at = *e.Timestamp
			}
			rows = append(rows, []any{e.ID, e.UserID, e.Action, e.ResourceType, e.ResourceID, string(e.Details), ip,
				e.UserAgent, e.SessionID, e.RequestID, success, e.ErrorMessage, at, time.Now()})
			got = append(got, m)
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), nats.ErrTimeout) {
			return 0, batch.Error()
		}
		if len(rows) == 0 {
			continue
		}
		err = pgx.BeginFunc(ctx, p.conn, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"plain_staging"}, prefillColumns, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO plain_logs SELECT * FROM plain_staging ON CONFLICT (id) DO NOTHING`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `TRUNCATE plain_staging`)
			return err
		})
		if err != nil {
			return 0, err
		}
		for _, m := range got {
			if err := m.Ack(); err != nil {
				return 0, err
			}
		}
		done += len(got)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
