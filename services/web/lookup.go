package web

import (
	"context"
	"errors"
	"fmt"

	"github.com/elastiq/elastiq/services/elastiq"
)

// ResultCacheKey is the cache key of a request's result.
func ResultCacheKey(id elastiq.RequestID) string { return "result/" + string(id) }

// lookup finds the state of request id: in memory, then the cache, then the
// durable output/<id> (backfilling the cache), and a stored input with no
// output yet means pending. For a pending request it also returns the
// queue its result goes to (empty: the shared response queue).
func (s *Server) lookup(ctx context.Context, id elastiq.RequestID) (res elastiq.Result, replyTo string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.IOTimeout)
	defer cancel()
	if res, ok, err := s.finished(ctx, id, true); ok || err != nil {
		return res, "", err
	}
	key := elastiq.InputKey(id)
	obj, err := s.store.Head(ctx, key)
	switch {
	case errors.Is(err, elastiq.ErrNotFound):
		return elastiq.Result{}, "", fail(errNotFound, fmt.Sprintf("no recognition request %s", id))
	case err != nil:
		return elastiq.Result{}, "", failCause(errUnavailable, "could not read the result store; try again",
			fmt.Errorf("head input %s: %w", key, err))
	}
	pending := elastiq.Result{ID: id, Status: elastiq.StatusPending}
	req, err := elastiq.RequestFromInput(key, obj)
	if err != nil {
		s.log.Warn("bad input metadata", "id", id, "key", key, "err", err)
		return pending, "", nil
	}
	pending.FileName, pending.SubmittedAt = req.FileName, req.SubmittedAt
	return pending, req.ReplyTo, nil
}

// finished returns request id's result if it has one: from memory, then
// the cache, then (with output) the durable output/<id>, backfilling the
// cache.
func (s *Server) finished(ctx context.Context, id elastiq.RequestID, output bool) (elastiq.Result, bool, error) {
	if res, ok := s.hub.lookup(id); ok {
		return res, true, nil
	}
	b, err := s.cache.Get(ctx, ResultCacheKey(id))
	switch {
	case err == nil:
		res, err := decodeResultOf(id, b)
		if err == nil {
			return res, true, nil
		}
		s.log.Warn("bad cached result; reading output", "id", id, "err", err)
	case !errors.Is(err, elastiq.ErrNotFound):
		s.log.Warn("cache get failed; reading output", "id", id, "err", err)
	}
	if !output {
		return elastiq.Result{}, false, nil
	}
	obj, err := s.store.Get(ctx, elastiq.OutputKey(id))
	switch {
	case err == nil:
		res, err := decodeResultOf(id, obj.Body)
		if err != nil {
			return elastiq.Result{}, false, failCause(errUnavailable, fmt.Sprintf("the stored result of %s is unreadable", id), err)
		}
		s.cacheResult(ctx, res)
		return res, true, nil
	case !errors.Is(err, elastiq.ErrNotFound):
		return elastiq.Result{}, false, failCause(errUnavailable, "could not read the result store; try again",
			fmt.Errorf("get output %s: %w", id, err))
	}
	return elastiq.Result{}, false, nil
}

// decodeResultOf decodes a stored result and checks it is id's.
func decodeResultOf(id elastiq.RequestID, b []byte) (elastiq.Result, error) {
	res, err := elastiq.DecodeResult(b)
	if err != nil {
		return elastiq.Result{}, err
	}
	if res.ID != id {
		return elastiq.Result{}, fmt.Errorf("decode result: id %s, want %s", res.ID, id)
	}
	return res, nil
}

// cacheResult writes res to the cache. A failure is logged and otherwise
// ignored: the cache is an accelerator and output/ has the durable copy.
func (s *Server) cacheResult(ctx context.Context, res elastiq.Result) {
	b, err := elastiq.EncodeResult(res)
	if err == nil {
		err = s.cache.Set(ctx, ResultCacheKey(res.ID), b, s.cfg.CacheTTL)
	}
	if err != nil {
		s.log.Warn("cache set failed", "id", res.ID, "err", err)
	}
}
