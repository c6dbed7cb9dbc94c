// Package harness drives "auditq serve" from the outside, as child
// processes, for the damage tests in e2e and for the benchmark ("auditq
// bench"): it starts a child with an environment of its own (Config,
// Launch, Start), waits for /readyz, stops or kills it, reads its exit
// state, memory, output and /metrics, and gives both sides what else they
// share: free ports, the base environment of a child, scratch databases
// and an in-process nats-server.
//
// It is not a test package (the benchmark is compiled into the binary, so
// it must not import "testing"): every call returns an error instead of
// failing a test; e2e's harness_test.go wraps it in helpers that do.
package harness

import (
	"errors"
	"fmt"
	"net"
)

// natsDefaultPort is where a nats-server started with defaults listens.
// Children, in-process servers and proxies never take it: it may belong
// to a broker the machine runs for something else.
const natsDefaultPort = 4222

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago
// (never 4222, the NATS default). Callers fix ports this way so that a
// restarted child or nats-server listens where the old one did. On
// failure it returns 0 and the error of the listen.
func FreePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("harness: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if port != natsDefaultPort {
			return port, nil
		}
	}
}

// BaseEnv returns what every child needs and nothing else:
// AUDITQ_DATABASE_URL dbURL, AUDITQ_DATA_DIR dataDir, an embedded NATS
// (AUDITQ_NATS_LISTEN) and the HTTP listener of /readyz and /metrics
// (AUDITQ_HTTP_ADDR) on free ports of 127.0.0.1, and AUDITQ_LOG_LEVEL
// warn. Callers add or override variables. On failure (no free port) it
// returns nil and the error.
func BaseEnv(dbURL, dataDir string) (map[string]string, error) {
	if dbURL == "" || dataDir == "" {
		return nil, errors.New("harness: BaseEnv needs a database URL and a data directory")
	}
	natsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	wsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"AUDITQ_DATABASE_URL": dbURL,
		"AUDITQ_DATA_DIR":     dataDir,
		"AUDITQ_NATS_LISTEN":  fmt.Sprintf("127.0.0.1:%d", natsPort),
		"AUDITQ_HTTP_ADDR":    fmt.Sprintf("127.0.0.1:%d", httpPort),
		// The console's WebSocket listener, on a port of its own per child.
		"AUDITQ_NATS_WEBSOCKET": fmt.Sprintf("127.0.0.1:%d", wsPort),
		"AUDITQ_LOG_LEVEL":      "warn",
	}, nil
}

// Tail returns the last n bytes of s, marked with a leading "..." when
// something was cut (it cannot fail).
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
