package ckring_test

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"ckring.dev/ckring"
	"ckring.dev/ckring/internal/testenv"
)

// The push benchmark's shape, the same in bench/push_loop.c (the C side of
// bindings/go/bench.sh): bursts of pushBurst pushes (well under a lane's
// capacity, so that no push finds the ring full), each burst timed in
// blocks of pushBlock pushes; between bursts, untimed, a wait until the
// flusher committed the burst. p50 is over the blocks' per-push times.
const (
	pushBurst = 4096
	pushBlock = 64
)

// BenchmarkMessage128 is Run.Message of 128 B: the Go push path. Its
// p50-ns/op and mean-ns/op compare with bench/push_loop.c's figures; ns/op
// also counts the timer reads and the bookkeeping between bursts.
func BenchmarkMessage128(b *testing.B) {
	benchPush(b, func(r *ckring.Run, msg []byte) (ckring.Ticket, error) { return r.Message(msg) })
}

// BenchmarkAppendMessage128 is the Checkpointer port over it.
func BenchmarkAppendMessage128(b *testing.B) {
	ctx := context.Background()
	benchPush(b, func(r *ckring.Run, msg []byte) (ckring.Ticket, error) { return r.AppendMessage(ctx, msg) })
}

func benchPush(b *testing.B, push func(*ckring.Run, []byte) (ckring.Ticket, error)) {
	seg := testenv.Segment(b)
	testenv.StartFlusher(b, seg, b.TempDir(), "--create", "--size", strconv.Itoa(64<<20),
		"--lanes", "2", "--sync", "none")
	c, err := ckring.Attach(seg, &ckring.ClientOptions{MaxRunBytes: 1 << 60})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Detach()
	r, _, err := c.BeginRun(ckring.RunSpec{ID: "bench", Kind: ckring.SingleLoop})
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 128)
	samples := make([]float64, 0, b.N/pushBlock+1)
	var total time.Duration
	var last ckring.Ticket
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		for inBurst := 0; inBurst < pushBurst && done < b.N; {
			n := pushBlock
			if b.N-done < n {
				n = b.N - done
			}
			t0 := time.Now()
			for i := 0; i < n; i++ {
				if last, err = push(r, msg); err != nil {
					b.Fatal(err)
				}
			}
			dt := time.Since(t0)
			total += dt
			samples = append(samples, float64(dt.Nanoseconds())/float64(n))
			done += n
			inBurst += n
		}
		b.StopTimer()
		if err := c.Wait(ctx, last, ckring.LevelCommitted); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	sort.Float64s(samples)
	if len(samples) > 0 {
		b.ReportMetric(samples[len(samples)/2], "p50-ns/op")
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "mean-ns/op")
	}
}
