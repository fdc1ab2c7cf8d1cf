package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/retry"
)

// consumeResponses consumes the response queue until ctx is done, with
// cfg.Consumers goroutines, and returns once they have all stopped. Each
// received result wakes its waiters, is remembered and cached, and its
// message is deleted. A batch already received when ctx ends is still
// handled.
func (s *Server) consumeResponses(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.cfg.Consumers {
		log := s.log.With("consumer", i)
		wg.Go(func() { s.consume(ctx, log) })
	}
	wg.Wait()
}

func (s *Server) consume(ctx context.Context, log *slog.Logger) {
	// The deletes go on while the next batch is received: the response
	// queue may hold them back to share a batch call (see cmd/web).
	var deletes sync.WaitGroup
	defer deletes.Wait()
	b := retry.Backoff{Min: minBackoff, Max: maxBackoff}
	for {
		if retry.Sleep(ctx, b.Delay()) != nil {
			return
		}
		msgs, err := s.receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("receive responses failed", "err", err, "retry_in", b.Fail())
			continue
		}
		b.Reset()
		// In order: the first result for an ID wins. The deletes go on
		// in the background.
		for _, m := range msgs {
			s.handleResponse(context.WithoutCancel(ctx), log, m, &deletes)
		}
		if len(msgs) > 0 && len(msgs) < s.cfg.ReceiveBatch && s.cfg.GatherWindow > 0 {
			if retry.Sleep(ctx, s.cfg.GatherWindow) != nil {
				return
			}
		}
	}
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

func (s *Server) receive(ctx context.Context) ([]elastiq.Message, error) {
	return s.receiveFrom(ctx, s.responses)
}

// receiveFrom long-polls q for a batch.
func (s *Server) receiveFrom(ctx context.Context, q elastiq.Queue) ([]elastiq.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReceiveWait+s.cfg.IOTimeout)
	defer cancel()
	return q.Receive(ctx, s.cfg.ReceiveBatch, s.cfg.ReceiveWait)
}

// handleResponse handles one response message. The first result for an ID
// wins; later ones, and messages that do not decode, are deleted. Waiters are
// woken before the cache write, which only serves later GETs. The delete runs
// in deletes, after handleResponse returns.
func (s *Server) handleResponse(ctx context.Context, log *slog.Logger, m elastiq.Message, deletes *sync.WaitGroup) {
	deliverCtx, cancel := context.WithTimeout(ctx, s.cfg.IOTimeout)
	defer cancel()
	res, err := elastiq.DecodeResult(m.Body)
	if err == nil {
		// Before the waiters wake: the log tells the story in order.
		log.Info("result received", "id", res.ID, "status", res.Status, "label", res.Label, "worker", res.Worker,
			"deliveries", res.Deliveries)
	}
	switch {
	case err != nil:
		s.metrics.responses.WithLabelValues(outcomeUndecodable).Inc()
		log.Error("undecodable response; deleting it", "message", m.ID, "err", err)
	case !s.hub.deliver(res):
		s.metrics.responses.WithLabelValues(outcomeDuplicate).Inc()
		log.Info("duplicate result ignored", "id", res.ID, "message", m.ID, "status", res.Status)
	default:
		now := s.now()
		s.metrics.observeResult(res, now)
		s.dash.result(res, now)
		s.cacheResult(deliverCtx, res)
	}
	deletes.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.IOTimeout)
		defer cancel()
		if err := s.responses.Delete(ctx, m.ReceiptHandle); err != nil {
			// It will be delivered again and then recognised as a duplicate.
			log.Warn("delete response failed", "id", res.ID, "message", m.ID, "err", err)
		}
	})
}
