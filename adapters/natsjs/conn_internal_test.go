package natsjs

import "testing"

func TestRedactURLHidesEveryCredential(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                      "nats://127.0.0.1:4222",
		"nats://u:secret@n1:4222":                    "nats://REDACTED@n1:4222",
		"u:secret@n1:4222":                           "REDACTED@n1:4222",
		"nats://u:p@ss@n1:4222":                      "nats://REDACTED@n1:4222",
		"nats://u:s1@n1:4222,nats://u:s2@n2:4222":    "nats://REDACTED@n1:4222,nats://REDACTED@n2:4222",
		"nats://n1:4222,tls://tok@n2:4222,nats://n3": "nats://n1:4222,tls://REDACTED@n2:4222,nats://n3",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
