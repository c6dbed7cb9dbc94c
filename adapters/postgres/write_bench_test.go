package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

func benchEvents(prefix string, n int) []audit.Event {
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("%s-%d", prefix, i))
	}
	return evs
}

// BenchmarkWrite measures one group-commit flush of 1,000 new events: the
// direct COPY path.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(b))
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if _, err := repo.Write(ctx, benchEvents(fmt.Sprint(i), 1000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWriteWithDuplicates measures a flush of 1,000 events of which
// one was already stored: the staging-table path.
func BenchmarkWriteWithDuplicates(b *testing.B) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(b))
	if _, err := repo.Write(ctx, benchEvents("dup", 1)); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		evs := benchEvents(fmt.Sprint(i), 1000)
		evs[500] = event("dup-0")
		if _, err := repo.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
