package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// DeadLetterDeps are what RunDeadLetters needs.
type DeadLetterDeps struct {
	// Dead is the request queue's dead-letter queue: the redrive policy moves
	// a request there after it was received too many times.
	Dead      elastiq.Queue
	Responses elastiq.Queue
	Store     elastiq.ObjectStore
	Logger    *slog.Logger
	Now       func() time.Time
	// Wait is the long-poll wait; default MaxReceiveWait.
	Wait time.Duration
}

// RunDeadLetters answers every request that lands on the dead-letter queue as
// failed, so its client gets a clear error instead of waiting forever: it
// writes a failed result to output/<id> (unless a result is already there,
// from a delivery that finished late), sends it on the response queue and
// deletes the dead letter. It returns when ctx is done.
func RunDeadLetters(ctx context.Context, deps DeadLetterDeps) error {
	if deps.Dead == nil || deps.Responses == nil || deps.Store == nil {
		return errors.New("dead letters: Dead, Responses and Store are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	wait := deps.Wait
	if wait <= 0 {
		wait = MaxReceiveWait
	}
	var b backoff
	b.min, b.max = 250*time.Millisecond, 8*time.Second
	for ctx.Err() == nil {
		msgs, err := deps.Dead.Receive(ctx, 10, wait)
		if err == nil {
			for _, m := range msgs {
				if err = answerDeadLetter(ctx, deps, now, m); err != nil {
					break
				}
				log.Warn("request failed: gave up after repeated deliveries", "message", m.ID, "receive_count", m.ReceiveCount)
			}
		}
		if err != nil && ctx.Err() == nil {
			d := b.fail()
			log.Error("dead letters", "err", err, "retry_in", d)
			if sleep(ctx, d) != nil {
				break
			}
			continue
		}
		b.reset()
	}
	return nil
}

func answerDeadLetter(ctx context.Context, deps DeadLetterDeps, now func() time.Time, m elastiq.Message) error {
	req, err := elastiq.DecodeRequest(m.Body)
	if err != nil {
		return deps.Dead.Delete(ctx, m.ReceiptHandle) // nothing to answer
	}
	key := elastiq.OutputKey(req.ID)
	var body []byte
	switch stored, err := deps.Store.Get(ctx, key); {
	case err == nil:
		body = stored.Body
	case errors.Is(err, elastiq.ErrNotFound):
		t := now()
		res := elastiq.Result{
			ID:          req.ID,
			FileName:    req.FileName,
			Status:      elastiq.StatusFailed,
			Error:       "gave up: the request failed on every delivery (see the workers' logs)",
			SubmittedAt: req.SubmittedAt,
			StartedAt:   t,
			FinishedAt:  t,
		}
		if body, err = elastiq.EncodeResult(res); err != nil {
			return fmt.Errorf("encode result %s: %w", req.ID, err)
		}
		if err := deps.Store.Put(ctx, key, elastiq.Object{Body: body, ContentType: "application/json"}); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	default:
		return fmt.Errorf("get %s: %w", key, err)
	}
	if err := deps.Responses.Send(ctx, body); err != nil {
		return fmt.Errorf("send response %s: %w", req.ID, err)
	}
	if err := deps.Dead.Delete(ctx, m.ReceiptHandle); err != nil {
		return fmt.Errorf("delete dead letter %s: %w", req.ID, err)
	}
	return nil
}
