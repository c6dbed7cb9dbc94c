package streams

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func testItems(from, n int) []Item {
	out := make([]Item, n)
	for i := range out {
		id := fmt.Sprintf("e-%d", from+i)
		out[i] = Item{ID: id, Time: time.Unix(1795510900, 0), Body: fmt.Appendf(nil, `{"id":%q,"leaf":%d}`, id, from+i)}
	}
	return out
}

// The webhook reuses its request body from batch to batch: every batch
// arrives as sent and signed, a large one after a small one, a small one
// after a large one, and after a failed request; a body that a request
// may still read is never reused.
func TestWebhookBodiesArriveWhole(t *testing.T) {
	const secret = "0123456789abcdef"
	var (
		mu     sync.Mutex
		bodies []string
		fail   bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(HeaderSignature) != Sign([]byte(secret), r.Header.Get(HeaderTimestamp), b) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		bodies = append(bodies, string(b))
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	sink, err := newSink(StreamConfig{Name: "s", Sink: KindWebhook, URL: srv.URL, Secret: secret, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sink.Close() }()
	w := sink.(*webhook)
	ctx := context.Background()
	var want []string
	var first *sentBytes
	for i, n := range []int{3, 500, 1, 200, 40, 7} {
		fail = i == 4
		batch := testItems(i*1000, n)
		if err := w.Send(ctx, batch); (err != nil) != fail {
			t.Fatalf("batch %d: %v", i, err)
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for j, it := range batch {
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(it.Body)
		}
		want = append(want, b.String()+"]")
		if i == 1 {
			first = w.body.cur
		}
	}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Fatalf("received\n%v\nwant\n%v", bodies, want)
	}
	if w.body.cur != first {
		t.Fatal("the webhook did not reuse its body after the second batch")
	}
	// A body with a reader the transport has not closed is not reused.
	r := w.body.cur.reader()
	if w.body.take(10) == first {
		t.Fatal("a body still being read was reused")
	}
	_ = r.Close()
}
