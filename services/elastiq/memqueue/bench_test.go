package memqueue

import (
	"context"
	"sync"
	"testing"
	"time"
)

var benchBody = []byte(`{"id":"01jf2x3y4z5a6b7c8d9e0f1g2h","input_key":"input/01jf2x3y4z5a6b7c8d9e0f1g2h","file_name":"test_00.jpg","submitted_at":"2025-01-02T03:04:05.123456789Z"}`)

// BenchmarkRoundTrip is one Send, Receive and Delete on a single goroutine.
func BenchmarkRoundTrip(b *testing.B) {
	q := New(Config{})
	defer q.Close()
	benchRoundTrip(b, q)
}

func benchRoundTrip(b *testing.B, q *Queue) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Send(ctx, benchBody); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.Receive(ctx, 1, 0)
		if err != nil || len(msgs) != 1 {
			b.Fatalf("Receive = %d messages, %v", len(msgs), err)
		}
		if err := q.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTripBacklog is the round trip with 10,000 messages waiting
// and 10,000 in flight, to show the cost does not grow with the queue.
func BenchmarkRoundTripBacklog(b *testing.B) {
	ctx := context.Background()
	q := New(Config{VisibilityTimeout: time.Hour})
	defer q.Close()
	for range 20_000 {
		if err := q.Send(ctx, benchBody); err != nil {
			b.Fatal(err)
		}
	}
	for range 1000 {
		if _, err := q.Receive(ctx, 10, 0); err != nil {
			b.Fatal(err)
		}
	}
	benchRoundTrip(b, q)
}

// BenchmarkConcurrentReceivers has 100 receivers long-polling while one
// producer sends b.N messages; each is received and deleted once. The time
// per operation covers the wake-up of a blocked receiver.
func BenchmarkConcurrentReceivers(b *testing.B) {
	const receivers = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := New(Config{})
	defer q.Close()

	var wg sync.WaitGroup
	var received sync.WaitGroup
	received.Add(b.N)
	for range receivers {
		wg.Go(func() {
			for {
				msgs, err := q.Receive(ctx, 1, 20*time.Second)
				if err != nil {
					return
				}
				for _, m := range msgs {
					if err := q.Delete(ctx, m.ReceiptHandle); err != nil {
						b.Error(err)
					}
					received.Done()
				}
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := q.Send(ctx, benchBody); err != nil {
			b.Fatal(err)
		}
	}
	received.Wait()
	b.StopTimer()
	cancel()
	wg.Wait()
}
