package diskstore

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
)

// Compact reclaims the space of overwritten and deleted objects. It seals
// the active segment, copies the live records of every older segment to
// the end of the log, flushes the copies to disk and then removes the
// older segments, oldest first. It does nothing when no segment holds a
// dead record.
//
// Put, Get, Head, List and Delete go on meanwhile: a record is copied only
// if its key still points at it, under the write mutex, so a Put or Delete
// racing with Compact always wins. A crash part-way leaves records twice
// (an original and its copy, equal) or tombstones without the records they
// shadowed, which Open handles like any other log. Tombstones are dropped:
// every record they could shadow is in the segments removed with them.
//
// Compact stops at ctx's end or at Close, leaving the segments it has not
// removed yet in place.
func (s *Store) Compact(ctx context.Context) error {
	if err := s.compact(ctx); err != nil {
		return fmt.Errorf("compact %s: %w", s.dir, err)
	}
	return nil
}

// relocation is a live record to copy.
type relocation struct {
	key string
	e   entry
}

func (s *Store) compact(ctx context.Context) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if err := cmp.Or(ctx.Err(), s.closedErr()); err != nil {
		return err
	}
	if st := s.Stats(); st.Bytes == st.LiveBytes {
		return nil
	}
	s.wmu.Lock()
	err := s.failed
	if err == nil && s.active.size.Load() > 0 {
		err = s.rotate(s.active.id + 1)
	}
	cutoff := s.active.id
	s.wmu.Unlock()
	if err != nil {
		return err
	}

	var sealed []*segment
	var moves []relocation
	s.mu.RLock()
	for _, g := range s.segs {
		if g.id < cutoff {
			sealed = append(sealed, g)
		}
	}
	for k, e := range s.index {
		if e.seg.id < cutoff {
			moves = append(moves, relocation{key: k, e: e})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(sealed, func(a, b *segment) int { return cmp.Compare(a.id, b.id) })
	// Read each segment front to back.
	slices.SortFunc(moves, func(a, b relocation) int {
		return cmp.Or(cmp.Compare(a.e.seg.id, b.e.seg.id), cmp.Compare(a.e.off, b.e.off))
	})

	var buf []byte
	for _, m := range moves {
		if err := cmp.Or(ctx.Err(), s.closedErr()); err != nil {
			return err
		}
		buf = slices.Grow(buf[:0], int(m.e.size))[:m.e.size]
		if err := m.e.seg.read(buf, m.e.off); err != nil {
			return fmt.Errorf("read %s offset %d: %w", m.e.seg.path, m.e.off, err)
		}
		// Never copy a damaged record: it would pass for a good one.
		if _, err := parseRecord(buf); err != nil {
			return fmt.Errorf("%s offset %d: %w", m.e.seg.path, m.e.off, err)
		}
		if err := s.relocate(m, buf); err != nil {
			return err
		}
	}

	if err := s.syncFrom(cutoff); err != nil {
		return err
	}
	for _, g := range sealed {
		if err := s.closedErr(); err != nil {
			return err
		}
		if err := s.removeSegment(g); err != nil {
			return err
		}
	}
	return nil
}

// syncFrom flushes segment cutoff and every newer one, which hold the
// copies, and the directory that names them: whatever the fsync option,
// the copies must be on disk before the originals go.
func (s *Store) syncFrom(cutoff uint32) error {
	var fresh []*segment
	s.mu.RLock()
	for _, g := range s.segs {
		if g.id >= cutoff {
			fresh = append(fresh, g)
		}
	}
	s.mu.RUnlock()
	for _, g := range fresh {
		if err := g.sync(); err != nil {
			return fmt.Errorf("flush %s: %w", g.path, err)
		}
	}
	return syncDir(s.dir)
}

// relocate appends rec, the record m.e points at, to the log and points
// m.key at the copy, unless a Put or Delete changed the key meanwhile.
func (s *Store) relocate(m relocation, rec []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cur, ok := s.index[m.key] // the index changes only under wmu
	if !ok || cur.seg != m.e.seg || cur.off != m.e.off {
		return nil
	}
	g, off, err := s.appendLocked(rec)
	if err != nil {
		return err
	}
	cur.seg, cur.off = g, off
	s.mu.Lock()
	s.setLocked(m.key, cur)
	s.mu.Unlock()
	return nil
}

// removeSegment drops a sealed segment that no key points into any more,
// waiting for reads of it in progress, and removes its file.
func (s *Store) removeSegment(g *segment) error {
	s.mu.Lock()
	live := g.live
	if live == 0 {
		delete(s.segs, g.id)
	}
	s.mu.Unlock()
	if live != 0 {
		return fmt.Errorf("%s: %d live bytes left after copying", g.path, live)
	}
	if err := g.close(); err != nil {
		return err
	}
	if err := os.Remove(g.path); err != nil {
		return err
	}
	// Removals must reach the disk in order: a newer segment's tombstone
	// gone before the older record it shadows would bring that back.
	return syncDir(s.dir)
}
