package web

import (
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// hub connects the response consumer to the handlers waiting for results.
// A handler subscribes to a request ID before it sends the request (so a
// fast result cannot be missed) and waits on the subscription's channel; the
// consumer delivers a result, which closes that channel at once. Delivered
// results are remembered for a while, bounded in time and count, to answer
// later subscribers and GETs and to recognise duplicate deliveries.
type hub struct {
	retention time.Duration
	maxRecent int
	now       func() time.Time

	mu      sync.Mutex
	waiting map[elastiq.RequestID]*waitEntry
	recent  map[elastiq.RequestID]recentResult
	order   []elastiq.RequestID // delivery order from order[head], oldest first
	head    int
}

type waitEntry struct {
	done chan struct{} // closed on delivery
	res  elastiq.Result
	subs int
}

type recentResult struct {
	res elastiq.Result
	at  time.Time
}

func newHub(retention time.Duration, maxRecent int, now func() time.Time) *hub {
	return &hub{
		retention: retention,
		maxRecent: maxRecent,
		now:       now,
		waiting:   make(map[elastiq.RequestID]*waitEntry),
		recent:    make(map[elastiq.RequestID]recentResult),
	}
}

// subscription is one handler's interest in one request's result.
type subscription struct {
	h        *hub
	id       elastiq.RequestID
	entry    *waitEntry
	canceled bool // guarded by h.mu
}

// subscribe registers interest in id. The caller must call cancel when it
// stops waiting. If the result is already known, Done is closed at once.
func (h *hub) subscribe(id elastiq.RequestID) *subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.lookupLocked(id); ok {
		e := &waitEntry{done: make(chan struct{}), res: r}
		close(e.done)
		return &subscription{h: h, id: id, entry: e, canceled: true}
	}
	e, ok := h.waiting[id]
	if !ok {
		e = &waitEntry{done: make(chan struct{})}
		h.waiting[id] = e
	}
	e.subs++
	return &subscription{h: h, id: id, entry: e}
}

// Done is closed when the result is delivered.
func (s *subscription) Done() <-chan struct{} { return s.entry.done }

// Result is the delivered result; call it only after Done is closed.
func (s *subscription) Result() elastiq.Result { return s.entry.res }

// cancel ends the subscription. It is safe to call more than once, and
// Done and Result stay usable.
func (s *subscription) cancel() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.canceled {
		return
	}
	s.canceled = true
	if e, ok := s.h.waiting[s.id]; ok && e == s.entry {
		if e.subs--; e.subs == 0 {
			delete(s.h.waiting, s.id)
		}
	}
}

// deliver records res and wakes its waiters. It reports false, and changes
// nothing, if a result for the same ID was already delivered and is still
// remembered: the first result wins.
func (h *hub) deliver(res elastiq.Result) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.lookupLocked(res.ID); dup {
		return false
	}
	now := h.now()
	h.evictLocked(now)
	h.recent[res.ID] = recentResult{res: res, at: now}
	h.order = append(h.order, res.ID)
	if e, ok := h.waiting[res.ID]; ok {
		e.res = res
		close(e.done)
		delete(h.waiting, res.ID)
	}
	return true
}

// lookup returns a remembered result.
func (h *hub) lookup(id elastiq.RequestID) (elastiq.Result, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lookupLocked(id)
}

func (h *hub) lookupLocked(id elastiq.RequestID) (elastiq.Result, bool) {
	r, ok := h.recent[id]
	if !ok || h.now().Sub(r.at) > h.retention {
		return elastiq.Result{}, false
	}
	return r.res, true
}

// evictLocked forgets results past the retention, and the oldest ones while
// there is no room for one more.
func (h *hub) evictLocked(now time.Time) {
	for h.head < len(h.order) {
		id := h.order[h.head]
		if len(h.order)-h.head < h.maxRecent && now.Sub(h.recent[id].at) <= h.retention {
			break
		}
		delete(h.recent, id)
		h.order[h.head] = ""
		h.head++
	}
	if h.head > len(h.order)/2 { // compact, amortised O(1) per delivery
		h.order = append(h.order[:0], h.order[h.head:]...)
		h.head = 0
	}
}

// waiters is the number of subscriptions still waiting.
func (h *hub) waiters() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.waiting {
		n += e.subs
	}
	return n
}
