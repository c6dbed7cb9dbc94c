package natsjs

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestFitPayloadCutsCopiesThatWouldNotFit(t *testing.T) {
	const limit = 1024
	small := nats.NewMsg("audit.poison.log")
	small.Data = []byte("fits")
	small.Header.Set("reason_poisoned", "action: unknown field")
	fitPayload(small, limit, 40)
	if string(small.Data) != "fits" || small.Header.Get(HeaderPayloadTruncated) != "" {
		t.Fatalf("a message that fits was changed: %q %v", small.Data, small.Header)
	}

	big := nats.NewMsg("audit.poison.log")
	big.Data = []byte(strings.Repeat("p", 2000))
	big.Header.Set("reason_poisoned", "padding: unknown field")
	fitPayload(big, limit, 40)
	if got := big.Header.Get(HeaderPayloadTruncated); got != "2000" {
		t.Fatalf("payload_truncated = %q, want 2000", got)
	}
	if n := len(big.Data) + headerSize(big.Header) + 40; n > limit || len(big.Data) == 0 {
		t.Fatalf("cut to %d bytes of payload, %d in all with the reserve; limit %d", len(big.Data), n, limit)
	}

	huge := nats.NewMsg("audit.poison.log")
	huge.Data = []byte("x")
	huge.Header.Set("reason_poisoned", strings.Repeat("r", 5000))
	fitPayload(huge, 4096, 40)
	if v := huge.Header.Get("reason_poisoned"); len(v) > maxHeaderValue+3 {
		t.Fatalf("header value of %d bytes kept", len(v))
	}
	if n := len(huge.Data) + headerSize(huge.Header) + 40; n > 4096 {
		t.Fatalf("%d bytes in all, limit 4096", n)
	}
	if _, err := strconv.Atoi(huge.Header.Get(HeaderPayloadTruncated)); err != nil {
		t.Fatalf("payload_truncated = %q", huge.Header.Get(HeaderPayloadTruncated))
	}
}
