package web

import (
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestHubDeliverWakesSubscribers(t *testing.T) {
	clock := elastiqtest.NewClock(time.Unix(1_700_000_000, 0))
	h := newHub(time.Minute, 10, clock.Now)
	id := elastiq.NewRequestID(clock.Now())
	a, b := h.subscribe(id), h.subscribe(id)
	if got := h.waiters(); got != 2 {
		t.Errorf("waiters() = %d, want 2", got)
	}
	if isClosed(a.Done()) {
		t.Fatal("Done closed before delivery")
	}
	if !h.deliver(elastiq.Result{ID: id, Label: "Paul"}) {
		t.Fatal("deliver(first) = false, want true")
	}
	for _, s := range []*subscription{a, b} {
		if !isClosed(s.Done()) || s.Result().Label != "Paul" {
			t.Errorf("after deliver: closed %v, result %+v; want closed with Paul", isClosed(s.Done()), s.Result())
		}
		s.cancel()
		s.cancel() // twice is harmless
	}
	if h.deliver(elastiq.Result{ID: id, Label: "Emily"}) {
		t.Error("deliver(duplicate) = true, want false")
	}
	late := h.subscribe(id)
	if !isClosed(late.Done()) || late.Result().Label != "Paul" {
		t.Errorf("subscribe after delivery: closed %v, result %+v; want closed with Paul", isClosed(late.Done()), late.Result())
	}
	late.cancel()
	if got := h.waiters(); got != 0 {
		t.Errorf("waiters() = %d, want 0", got)
	}
}

func TestHubCancelForgetsWaiter(t *testing.T) {
	h := newHub(time.Minute, 10, time.Now)
	id := elastiq.NewRequestID(time.Now())
	a, b := h.subscribe(id), h.subscribe(id)
	a.cancel()
	if got := h.waiters(); got != 1 {
		t.Errorf("waiters() after one cancel = %d, want 1", got)
	}
	h.deliver(elastiq.Result{ID: id, Label: "Bob"})
	if !isClosed(b.Done()) || b.Result().Label != "Bob" {
		t.Errorf("remaining subscriber: closed %v, result %+v; want Bob", isClosed(b.Done()), b.Result())
	}
	b.cancel()
	if len(h.waiting) != 0 {
		t.Errorf("waiting map has %d entries, want 0", len(h.waiting))
	}
}

func TestHubRetention(t *testing.T) {
	clock := elastiqtest.NewClock(time.Unix(1_700_000_000, 0))
	h := newHub(time.Minute, 3, clock.Now)
	var ids []elastiq.RequestID
	for i := range 5 {
		id := elastiq.NewRequestID(clock.Now())
		ids = append(ids, id)
		h.deliver(elastiq.Result{ID: id, Label: string(rune('a' + i))})
		clock.Advance(time.Second)
	}
	// Bounded count: the two oldest are forgotten.
	for i, id := range ids {
		_, ok := h.lookup(id)
		if want := i >= 2; ok != want {
			t.Errorf("lookup(result %d of 5, max 3) found = %v, want %v", i, ok, want)
		}
	}
	if len(h.recent) != 3 {
		t.Errorf("len(recent) = %d, want 3", len(h.recent))
	}
	// Bounded age: past the retention nothing is found, and the next
	// delivery evicts the lot.
	clock.Advance(time.Minute)
	if _, ok := h.lookup(ids[4]); ok {
		t.Errorf("lookup after the retention found the result, want not")
	}
	if !h.deliver(elastiq.Result{ID: ids[4], Label: "again"}) {
		t.Errorf("deliver after the retention = false, want true (the first is forgotten)")
	}
	if len(h.recent) != 1 || len(h.order)-h.head != 1 {
		t.Errorf("after eviction: %d recent, %d in order; want 1 and 1", len(h.recent), len(h.order)-h.head)
	}
}
