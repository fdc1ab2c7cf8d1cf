package web

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// storeHealth is what the web tier knows of its object store: whether the
// last write of an upload failed, and why. /healthz answers 503 with the
// reason while it does, and /metrics shows it (elastiq_web_store_up), so a
// full disk or a store outage is seen by whoever watches, not only by the
// clients whose uploads get 503. While unhealthy, /healthz probes the store
// (a write and delete of probeKey, at most once per probeEvery) to see it
// recover without waiting for an upload.
type storeHealth struct {
	mu        sync.Mutex
	err       error
	since     time.Time
	lastProbe time.Time
}

// probeKey is under input/ (the web tier's role may write and delete only
// there) but is no request's key: recovery skips it.
const probeKey = elastiq.InputPrefix + "healthz-probe"

const probeEvery = 2 * time.Second

func (h *storeHealth) record(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (err == nil) != (h.err == nil) {
		h.since = now
	}
	h.err = err
}

// status returns the store's last error, nil when healthy.
func (h *storeHealth) status() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// check returns the store's health, probing it first when it was unhealthy
// and the last probe is older than probeEvery.
func (s *Server) checkStore(ctx context.Context) error {
	h := &s.storeHealth
	h.mu.Lock()
	probe := h.err != nil && s.now().Sub(h.lastProbe) >= probeEvery
	if probe {
		h.lastProbe = s.now()
	}
	err := h.err
	h.mu.Unlock()
	if !probe {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MetricsTimeout)
	defer cancel()
	err = s.store.Put(ctx, probeKey, elastiq.Object{Body: []byte("ok"), ContentType: "text/plain"})
	if err == nil {
		err = s.store.Delete(ctx, probeKey)
	}
	if err != nil {
		err = fmt.Errorf("probe %s: %w", probeKey, err)
	}
	h.record(err, s.now())
	return err
}
