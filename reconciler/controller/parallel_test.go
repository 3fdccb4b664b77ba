package controller

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// inParallelBy runs every index exactly once, never more than workers at a
// time, and on a number of goroutines bounded by workers, not by the items.
func TestInParallelByRunsEachIndexOnceWithinItsWorkers(t *testing.T) {
	for _, tc := range []struct{ workers, n int }{{16, 5000}, {4, 3}, {1, 10}, {8, 0}} {
		var (
			mu       sync.Mutex
			seen     = make([]int, tc.n)
			running  atomic.Int32
			most     atomic.Int32
			gorStart = runtime.NumGoroutine()
			gorMost  atomic.Int32
		)
		inParallelBy(tc.workers, tc.n, func(i int) {
			now := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			for g, m := int32(runtime.NumGoroutine()-gorStart), gorMost.Load(); g > m && !gorMost.CompareAndSwap(m, g); m = gorMost.Load() {
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			runtime.Gosched()
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("workers=%d n=%d: index %d ran %d times", tc.workers, tc.n, i, c)
			}
		}
		if int(most.Load()) > tc.workers {
			t.Errorf("workers=%d n=%d: %d ran at once", tc.workers, tc.n, most.Load())
		}
		// Other tests' goroutines may come and go meanwhile: a margin, far
		// below the one per item a pool without a bound would start.
		if int(gorMost.Load()) > tc.workers+64 {
			t.Errorf("workers=%d n=%d: %d goroutines were started", tc.workers, tc.n, gorMost.Load())
		}
	}
}
