package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/auditq/auditq/adapters/postgres"
)

// BenchmarkWriteTwoFlushers measures two concurrent flushes of 1,000 new
// events each, all in the same hour (the group-commit default of two
// flushers at a steady rate): both mark the same hour changed, each with a
// change row of its own, so neither waits for the other to commit.
func BenchmarkWriteTwoFlushers(b *testing.B) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(b))
	var seq atomic.Int64
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := repo.Write(ctx, benchEvents(fmt.Sprint(seq.Add(1)), 1000)); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*2000)/b.Elapsed().Seconds(), "events/s")
}
