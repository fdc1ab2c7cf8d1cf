package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/retry"
)

// deadLetterError is the error of a request answered from the dead-letter
// queue.
const deadLetterError = "gave up: the request failed on every delivery (see the workers' logs)"

// consumeDeadLetters answers every request that lands on the dead-letter
// queue as failed, so its client gets a clear error instead of waiting
// forever: it writes a failed result to output/<id> (unless a result is
// already there, from a delivery that finished late), sends it on the
// response queue of the web instance that accepted it, as a worker would,
// and deletes the dead letter. It returns
// when ctx is done.
func (s *Server) consumeDeadLetters(ctx context.Context) {
	log := s.log.With("consumer", "dead-letters")
	b := retry.Backoff{Min: minBackoff, Max: maxBackoff}
	for {
		if retry.Sleep(ctx, b.Delay()) != nil {
			return
		}
		msgs, err := s.receiveFrom(ctx, s.deadLetters)
		if err == nil {
			for _, m := range msgs {
				if err = s.answerDeadLetter(context.WithoutCancel(ctx), log, m); err != nil {
					break
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error("dead letters", "err", err, "retry_in", b.Fail())
			continue
		}
		b.Reset()
	}
}

func (s *Server) answerDeadLetter(ctx context.Context, log *slog.Logger, m elastiq.Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.IOTimeout)
	defer cancel()
	req, err := elastiq.DecodeRequest(m.Body)
	if err != nil {
		log.Warn("undecodable dead letter; deleting it", "message", m.ID, "err", err)
		return s.deadLetters.Delete(ctx, m.ReceiptHandle) // nothing to answer
	}
	log.Warn("request failed: gave up after repeated deliveries", "id", req.ID, "message", m.ID, "receive_count", m.ReceiveCount)
	key := elastiq.OutputKey(req.ID)
	var body []byte
	switch stored, err := s.store.Get(ctx, key); {
	case err == nil:
		body = stored.Body
	case errors.Is(err, elastiq.ErrNotFound):
		t := s.now()
		res := elastiq.Result{
			ID:          req.ID,
			FileName:    req.FileName,
			Status:      elastiq.StatusFailed,
			Error:       deadLetterError,
			SubmittedAt: req.SubmittedAt,
			StartedAt:   t,
			FinishedAt:  t,
		}
		if body, err = elastiq.EncodeResult(res); err != nil {
			return fmt.Errorf("encode result %s: %w", req.ID, err)
		}
		if err := s.store.Put(ctx, key, elastiq.Object{Body: body, ContentType: "application/json"}); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	default:
		return fmt.Errorf("get %s: %w", key, err)
	}
	if err := s.reply(ctx, req.ReplyTo, body); err != nil {
		return fmt.Errorf("send response %s: %w", req.ID, err)
	}
	s.metrics.deadLetters.Inc()
	s.dash.deadLetter()
	if err := s.deadLetters.Delete(ctx, m.ReceiptHandle); err != nil {
		return fmt.Errorf("delete dead letter %s: %w", req.ID, err)
	}
	return nil
}

// reply sends a result on the queue replyTo names, or on the response
// queue. A reply queue that no longer exists is no error: its web instance
// is gone, and output/ has the result for any other.
func (s *Server) reply(ctx context.Context, replyTo string, body []byte) error {
	to := replyTo
	if to == s.replyTo {
		to = "" // this instance's own queue: responses
	}
	q, err := s.replyQueues.Destination(to, s.responses)
	if err == nil {
		err = q.Send(ctx, body)
	}
	if elastiq.ReplyGone(replyTo, err) {
		s.log.Info("reply queue gone (its web instance stopped); the result stays in output/", "reply_to", replyTo)
		return nil
	}
	return err
}
