package config_test

import (
	"strings"
	"testing"
)

func TestNATSReplicas(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSReplicas != 1 {
		t.Fatalf("default AUDITQ_NATS_REPLICAS = %d, want 1", c.NATSReplicas)
	}
	external := "nats://n1:4222,nats://n2:4222,nats://n3:4222"
	for _, n := range []string{"1", "3", "5"} {
		c, err := load(map[string]string{"AUDITQ_NATS_REPLICAS": n, "AUDITQ_NATS_URL": external})
		if err != nil {
			t.Fatalf("AUDITQ_NATS_REPLICAS=%s: %v", n, err)
		}
		if c.NATSURL != external {
			t.Fatalf("AUDITQ_NATS_URL = %q, want the comma-separated list %q", c.NATSURL, external)
		}
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"AUDITQ_NATS_REPLICAS": "2", "AUDITQ_NATS_URL": external}, "AUDITQ_NATS_REPLICAS: must be 1, 3 or 5, got 2"},
		{map[string]string{"AUDITQ_NATS_REPLICAS": "0", "AUDITQ_NATS_URL": external}, "must be 1, 3 or 5, got 0"},
		{map[string]string{"AUDITQ_NATS_REPLICAS": "three", "AUDITQ_NATS_URL": external}, "AUDITQ_NATS_REPLICAS: must be an integer"},
		{map[string]string{"AUDITQ_NATS_REPLICAS": "3"}, "AUDITQ_NATS_REPLICAS=3 needs an external JetStream cluster (AUDITQ_NATS_URL)"},
	} {
		_, err := load(tc.vars)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.vars, err, tc.want)
		}
	}
}
