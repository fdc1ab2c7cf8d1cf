package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	steps := []struct {
		name string
		do   func() time.Duration
		want time.Duration
	}{
		{name: "fresh", do: b.Delay, want: 0},
		{name: "first failure", do: b.Fail, want: 100 * time.Millisecond},
		{name: "second failure", do: b.Fail, want: 200 * time.Millisecond},
		{name: "third failure", do: b.Fail, want: 400 * time.Millisecond},
		{name: "owed", do: b.Delay, want: 400 * time.Millisecond},
		{name: "fourth failure", do: b.Fail, want: 800 * time.Millisecond},
		{name: "capped", do: b.Fail, want: time.Second},
		{name: "still capped", do: b.Fail, want: time.Second},
		{name: "reset", do: func() time.Duration { b.Reset(); return b.Delay() }, want: 0},
		{name: "after reset", do: b.Fail, want: 100 * time.Millisecond},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(t.Context(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms) = %v, want nil", err)
	}
	if err := Sleep(t.Context(), 0); err != nil {
		t.Errorf("Sleep(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(1h) on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) on a cancelled context = %v, want context.Canceled", err)
	}
}
