package embedded

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/diskstore"
)

// Retention: the stack deletes what it stored for a request (its input, a
// verification's second image, its output) once the request is older than
// Config.Retention, as the AWS bucket's lifecycle rule does (lifecycleDays,
// 7 in the dev stack), and compacts the store in the background to give the
// space back. Without it each request kept about 2 KB on disk and 1 KB of
// index in memory for ever. A request's age is its ID's time (when it was
// accepted); a result asked for after that is 404, as in S3, once the web
// tier's short-lived copies (its cache, CacheTTL) are gone too.

// retentionInterval is how often the store is swept: a tenth of the
// retention, between a second and an hour.
func retentionInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Hour)
}

// expire deletes the objects of the requests accepted before cutoff and
// returns how many it deleted. Keys that are not a request's are left
// alone.
func expire(ctx context.Context, store elastiq.ObjectStore, cutoff time.Time) (int, error) {
	n := 0
	for _, prefix := range []string{elastiq.InputPrefix, elastiq.OutputPrefix} {
		keys, err := store.List(ctx, prefix)
		if err != nil {
			return n, fmt.Errorf("expire: list %s: %w", prefix, err)
		}
		for _, key := range keys {
			id, err := elastiq.IDFromKey(strings.TrimSuffix(key, ".second"))
			if err != nil || !id.Time().Before(cutoff) {
				continue
			}
			if err := store.Delete(ctx, key); err != nil {
				return n, fmt.Errorf("expire: delete %s: %w", key, err)
			}
			n++
		}
	}
	return n, nil
}

// compactWhenWasteful compacts the store once the space it would reclaim
// is at least what it holds live (and a megabyte), so a compaction copies
// no more than it frees.
func compactWhenWasteful(ctx context.Context, store *diskstore.Store) (bool, error) {
	st := store.Stats()
	if dead := st.Bytes - st.LiveBytes; dead < 1<<20 || dead < st.LiveBytes {
		return false, nil
	}
	return true, store.Compact(ctx)
}

// retain sweeps the store every retentionInterval until ctx ends.
func (s *Stack) retain(ctx context.Context) {
	tick := time.NewTicker(retentionInterval(s.cfg.Retention))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n, err := expire(ctx, s.Store, now.Add(-s.cfg.Retention))
			if err != nil && ctx.Err() == nil {
				s.log.Warn("retention: sweep failed; next sweep in an interval", "err", err)
			}
			if n > 0 {
				s.log.Debug("retention: deleted expired objects", "count", n, "retention", s.cfg.Retention)
			}
			before := s.Store.Stats().Bytes
			if done, err := compactWhenWasteful(ctx, s.Store); err != nil && ctx.Err() == nil {
				s.log.Warn("retention: compaction failed", "err", err)
			} else if done {
				s.log.Info("retention: store compacted", "bytes_before", before, "bytes_after", s.Store.Stats().Bytes)
			}
		}
	}
}
