package usage_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/usage"
)

// sink is a Writer that keeps what it was given, summed per key and hour.
type sink struct {
	mu      sync.Mutex
	fail    error
	sums    map[uuid.UUID]map[time.Time][keyhub.UsageOutcomes]int64
	batches [][]keyhub.UsageCount
}

func newSink() *sink { return &sink{sums: map[uuid.UUID]map[time.Time][keyhub.UsageOutcomes]int64{}} }

func (s *sink) write(_ context.Context, batch []keyhub.UsageCount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.batches = append(s.batches, batch)
	for _, u := range batch {
		if s.sums[u.KeyID] == nil {
			s.sums[u.KeyID] = map[time.Time][keyhub.UsageOutcomes]int64{}
		}
		sum := s.sums[u.KeyID][u.Hour]
		for o, n := range u.Counts {
			sum[o] += n
		}
		s.sums[u.KeyID][u.Hour] = sum
	}
	return nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Every increment made while flushes run lands in exactly one flushed
// batch: none lost between a flush taking a shard and the next one.
func TestConcurrentAddsAndFlushesLoseNothing(t *testing.T) {
	t.Parallel()
	s := newSink()
	c := usage.New(s.write, time.Hour, discard())
	keys := make([]uuid.UUID, 8)
	for i := range keys {
		keys[i] = uuid.New()
	}
	hour := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	const workers, perWorker = 4, 6000 // a multiple of the 3 classes
	var adders sync.WaitGroup
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stop:
				return
			default:
				if err := c.Flush(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	for w := range workers {
		adders.Add(1)
		go func() {
			defer adders.Done()
			for i := range perWorker {
				c.Add(keys[(w+i)%len(keys)], hour.Add(time.Duration(i%60)*time.Second), keyhub.UsageOutcome(i%3))
			}
		}()
	}
	adders.Wait()
	close(stop)
	<-flushed
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var total [keyhub.UsageOutcomes]int64
	for _, hours := range s.sums {
		for h, sum := range hours {
			if !h.Equal(hour) {
				t.Errorf("counted in hour %v, want %v", h, hour)
			}
			for o, n := range sum {
				total[o] += n
			}
		}
	}
	for o, n := range total {
		if want := int64(workers * perWorker / 3); n != want {
			t.Errorf("outcome %d: %d counted, want %d", o, n, want)
		}
	}
	if got := total[0] + total[1] + total[2]; got != workers*perWorker {
		t.Fatalf("%d requests counted, want %d", got, workers*perWorker)
	}
}

// A batch is sorted by key then hour, each pair once, and a request
// counts in the hour it was made in.
func TestBatchSortedByKeyAndHour(t *testing.T) {
	t.Parallel()
	s := newSink()
	c := usage.New(s.write, time.Hour, discard())
	at := time.Date(2026, 12, 6, 13, 59, 59, 0, time.UTC)
	var keys []uuid.UUID
	for range 50 {
		k := uuid.New()
		keys = append(keys, k)
		c.Add(k, at, keyhub.UsageOK)
		c.Add(k, at.Add(2*time.Second), keyhub.UsageRateLimited) // the next hour
		c.Add(k, at, keyhub.UsageOK)
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.batches) != 1 || len(s.batches[0]) != 100 {
		t.Fatalf("batches %d, first of %d rows; want one of 100", len(s.batches), len(s.batches[0]))
	}
	b := s.batches[0]
	for i := 1; i < len(b); i++ {
		cmp := bytes.Compare(b[i-1].KeyID[:], b[i].KeyID[:])
		if cmp > 0 || cmp == 0 && !b[i-1].Hour.Before(b[i].Hour) {
			t.Fatalf("row %d (%v %v) not after row %d (%v %v)", i, b[i].KeyID, b[i].Hour, i-1, b[i-1].KeyID, b[i-1].Hour)
		}
	}
	for _, k := range keys {
		got := s.sums[k]
		if got[at.Truncate(time.Hour)] != [keyhub.UsageOutcomes]int64{2, 0, 0} || got[at.Add(time.Second)] != [keyhub.UsageOutcomes]int64{0, 0, 1} {
			t.Fatalf("key %v: %v", k, got)
		}
	}
}

// A failed write keeps its counts for the next flush, added to what came
// meanwhile.
func TestFailedFlushIsRetried(t *testing.T) {
	t.Parallel()
	s := newSink()
	c := usage.New(s.write, time.Hour, discard())
	k := uuid.New()
	at := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	c.Add(k, at, keyhub.UsageRefused)
	s.fail = errors.New("database down")
	if err := c.Flush(context.Background()); err == nil {
		t.Fatal("flush succeeded with a failing writer")
	}
	c.Add(k, at, keyhub.UsageRefused)
	s.fail = nil
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.sums[k][at]; got != [keyhub.UsageOutcomes]int64{0, 2, 0} {
		t.Fatalf("after a failed and a good flush: %v, want 2 refused", got)
	}
}

// Run flushes on its ticker and once more when its context ends.
func TestRunFlushesOnStop(t *testing.T) {
	t.Parallel()
	s := newSink()
	c := usage.New(s.write, time.Hour, discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	k := uuid.New()
	at := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	c.Add(k, at, keyhub.UsageOK)
	cancel()
	<-done
	if got := s.sums[k][at]; got[keyhub.UsageOK] != 1 {
		t.Fatalf("after stop: %v, want 1 ok", got)
	}
}

// BenchmarkAdd is the auth path's share: one count of a key seen before
// in this hour.
func BenchmarkAdd(b *testing.B) {
	c := usage.New(func(context.Context, []keyhub.UsageCount) error { return nil }, time.Hour, discard())
	k, at := uuid.New(), time.Now()
	c.Add(k, at, keyhub.UsageOK)
	b.ReportAllocs()
	for b.Loop() {
		c.Add(k, at, keyhub.UsageOK)
	}
}

// BenchmarkAddParallel is the same from every core, on 64 keys.
func BenchmarkAddParallel(b *testing.B) {
	c := usage.New(func(context.Context, []keyhub.UsageCount) error { return nil }, time.Hour, discard())
	keys := make([]uuid.UUID, 64)
	for i := range keys {
		keys[i] = uuid.New()
	}
	at := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Add(keys[i%len(keys)], at, keyhub.UsageOK)
			i++
		}
	})
}
