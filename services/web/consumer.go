package web

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Run consumes the response queue until ctx is done, with cfg.Consumers
// goroutines, and returns nil once they have all stopped. Each received
// result wakes its waiters, is remembered and cached, and its message is
// deleted. A batch already received when ctx ends is still handled. Run may
// not be called twice at once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("web: Run is already running")
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	for i := range s.cfg.Consumers {
		log := s.log.With("consumer", i)
		wg.Go(func() { s.consume(ctx, log) })
	}
	wg.Wait()
	return nil
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

func (s *Server) consume(ctx context.Context, log *slog.Logger) {
	var backoff time.Duration
	for {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		default:
		}
		msgs, err := s.receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			log.Warn("receive responses failed", "err", err, "retry_in", backoff)
			continue
		}
		backoff = 0
		for _, m := range msgs {
			s.handleResponse(context.WithoutCancel(ctx), log, m)
		}
	}
}

func (s *Server) receive(ctx context.Context) ([]elastiq.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReceiveWait+s.cfg.IOTimeout)
	defer cancel()
	return s.responses.Receive(ctx, s.cfg.ReceiveBatch, s.cfg.ReceiveWait)
}

// handleResponse handles one response message. The first result for an ID
// wins; later ones, and messages that do not decode, are deleted. Waiters are
// woken before the cache write, which only serves later GETs.
func (s *Server) handleResponse(ctx context.Context, log *slog.Logger, m elastiq.Message) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.IOTimeout)
	defer cancel()
	res, err := elastiq.DecodeResult(m.Body)
	switch {
	case err != nil:
		s.metrics.responses.Inc(outcomeUndecodable)
		log.Error("undecodable response; deleting it", "message", m.ID, "err", err)
	case !s.hub.deliver(res):
		s.metrics.responses.Inc(outcomeDuplicate)
		log.Info("duplicate result ignored", "id", res.ID, "message", m.ID, "status", res.Status)
	default:
		s.metrics.observeResult(res, s.now())
		s.cacheResult(ctx, res)
	}
	if err := s.responses.Delete(ctx, m.ReceiptHandle); err != nil {
		// It will be delivered again and then recognised as a duplicate.
		log.Warn("delete response failed", "message", m.ID, "err", err)
	}
}
