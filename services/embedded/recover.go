package embedded

import (
	"context"
	"fmt"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Recover re-enqueues every accepted input that has no output yet, so that a
// restart of the embedded stack (whose queue lives in memory) loses nothing
// it had accepted. It returns the IDs of the requests it sent again. When q
// takes receive counts (memqueue's SendReceived) and receives is not nil,
// each request goes back with the count receives gives it (the journal's),
// so one delivered MaxReceives times already goes to the dead-letter queue.
//
// A request that was in flight at the moment of the restart may end up
// processed twice if an earlier delivery still finishes; the worker's output
// write is idempotent and the web tier keeps the first result, so that is
// harmless.
func Recover(ctx context.Context, store elastiq.ObjectStore, q elastiq.Queue, receives func(elastiq.RequestID) int) ([]elastiq.RequestID, error) {
	counted, _ := q.(interface {
		SendReceived(ctx context.Context, body []byte, receives int) error
	})
	inputs, err := store.List(ctx, elastiq.InputPrefix)
	if err != nil {
		return nil, fmt.Errorf("recover: list inputs: %w", err)
	}
	outputs, err := store.List(ctx, elastiq.OutputPrefix)
	if err != nil {
		return nil, fmt.Errorf("recover: list outputs: %w", err)
	}
	done := make(map[elastiq.RequestID]bool, len(outputs))
	for _, key := range outputs {
		if id, err := elastiq.IDFromKey(key); err == nil {
			done[id] = true
		}
	}
	var sent []elastiq.RequestID
	for _, key := range inputs {
		id, err := elastiq.IDFromKey(key)
		if err != nil || done[id] {
			continue // not ours, or finished
		}
		obj, err := store.Head(ctx, key)
		if err != nil {
			return sent, fmt.Errorf("recover: head %s: %w", key, err)
		}
		req, err := elastiq.RequestFromInput(key, obj)
		if err != nil {
			return sent, fmt.Errorf("recover: %w", err)
		}
		body, err := elastiq.EncodeRequest(req)
		if err != nil {
			return sent, fmt.Errorf("recover: encode %s: %w", id, err)
		}
		if counted != nil && receives != nil {
			err = counted.SendReceived(ctx, body, receives(id))
		} else {
			err = q.Send(ctx, body)
		}
		if err != nil {
			return sent, fmt.Errorf("recover: send %s: %w", id, err)
		}
		sent = append(sent, id)
	}
	return sent, nil
}
