// Package diskstore is an elastiq.ObjectStore in a local directory, so that
// the embedded stack's accepted images and results survive a restart. It is
// a log-structured store in the manner of Bitcask: objects are appended to
// a log, and an index in memory says where each one is.
//
// # Layout
//
// The directory holds segment files seg-00000001.log, seg-00000002.log, …
// and a LOCK file. Segments are append-only. The newest is the active
// segment; once it holds WithSegmentSize bytes (default
// DefaultSegmentSize) the next write starts a new one. Other files in the
// directory are ignored, among them the objects of the earlier
// one-file-per-object version of this package (input/…, output/…, ~tmp/):
// Open only warns that they are there.
//
// Each Put or Delete is one record, written with a single write(2) to the
// active segment (opened O_APPEND) under a mutex:
//
//	magic "eqs\x01" | CRC-32C | op | 0 | key len | meta len | body len | key | meta | body
//
// with a 20-byte little-endian header (see record.go); the CRC covers
// everything after itself. Meta is the content type and the metadata,
// uvarint-length-prefixed strings with the metadata in key order. A Delete
// writes a tombstone: a record with op delete and no meta or body.
//
// # Index
//
// The index maps each key to its latest record's segment, offset and size,
// with the content type and metadata. Put and Delete update it after their
// write, in log order. Head answers from memory; Get reads the record with
// one ReadAt on the segment's read handle, holding no store-wide lock
// during the I/O, and checks its CRC before returning the body; List sorts
// the matching keys on demand (it is meant for start-up, not the hot path).
// Keys are validated as before (see ValidateKey); unlike on a file system,
// input/a and input/a/b may both exist, as on S3.
//
// # Open and recovery
//
// Open takes an exclusive flock(2) on LOCK, so a second Open of the same
// directory (in this process or another) fails until Close, then reads
// every segment in order, checking each record's CRC, and rebuilds the
// index: the last record for a key wins. It reads all the data once, so it
// takes time in proportion to the store's size (see BenchmarkOpen).
//
// A crash in the middle of a write leaves the newest segment ending in a
// torn record. A damaged record counts as such a torn tail when no valid
// record follows it anywhere in its file; Open then truncates the file
// there, logs a warning (WithLogger) with the file, offset and size, and
// carries on. Any other damaged record, one with valid records after it,
// is corruption: Open fails with an error naming the file and offset
// rather than dropping data. A damaged record met later by Get is an error
// for that Get.
//
// Older segments are held to the same rule, not a stricter one, because
// without WithFsync a power loss may leave any recent segment short: the
// page cache writes files back in no particular order, and flushing each
// full segment as the log moves on would stall every Put behind a flush of
// up to a segment's worth of dirty pages. (With WithFsync every record is
// flushed before its Put returns, so only an unacknowledged last write can
// be torn.) The price is that damage confined to the last record of an
// older segment is truncated with a warning instead of failing Open.
//
// # Durability
//
// By default a Put does not fsync: a stored object survives the process
// crashing or restarting (the data is in the OS page cache), but not a
// power loss or kernel crash. With WithFsync, Put and Delete return only
// once their record is on stable storage. Concurrent writers share the
// fsync (group commit): one goroutine flushes everything written so far
// while the others wait for it, outside the write mutex, so writes go on
// during a flush. A record is visible to Get as soon as it is written,
// before its flush completes.
//
// If a write fails part-way, the segment is truncated back to its last
// whole record. If that, or a flush, fails, the Store refuses further
// writes (reads go on working): Close it and Open it again, which
// recovers from whatever reached the disk.
//
// # Space
//
// An overwritten or deleted object's old record stays in its segment
// until Compact seals the active segment, copies the live records of all
// the segments to the end of the log and removes them. Compact rewrites
// every live byte, so call it when Stats shows much dead space; nothing
// calls it on its own, since the pipeline's inputs and outputs are written
// once and rarely deleted. The index holds every key with its metadata in
// memory, a few hundred bytes per object.
//
// Why a log, and what it costs, is in README.md beside this file.
package diskstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/elastiq/elastiq/services/elastiq"
)

// DefaultSegmentSize is the size past which the log moves to a new
// segment.
const DefaultSegmentSize = 64 << 20

const (
	lockFile = "LOCK"
	// oldTempDir marks a directory written by the one-file-per-object
	// version of this package.
	oldTempDir = "~tmp"
)

// ErrClosed is returned (wrapped) by calls on a closed Store.
var ErrClosed = errors.New("store closed")

// Store is an object store in a directory. It is safe for concurrent use.
type Store struct {
	dir     string
	fsync   bool
	segSize int64
	log     *slog.Logger

	lock    *os.File // holds the flock on LOCK while open
	closing atomic.Bool

	// Lock order: compactMu, syncMu, wmu, mu, segment.mu.

	// compactMu allows one Compact at a time.
	compactMu sync.Mutex

	// syncMu serialises the flushes of group commit.
	syncMu    sync.Mutex
	syncedGen uint64 // every write up to this generation is on disk
	flushes   atomic.Int64

	// wmu guards the log's tail: the writer, the active segment, and every
	// change to the index, so the index changes in log order.
	wmu    sync.Mutex
	w      *os.File // the active segment's writer; nil once closed
	active *segment
	gen    uint64 // writes so far
	failed error  // set when the log's tail is in doubt: no more writes

	// mu guards index and segs; writers hold wmu too.
	mu    sync.RWMutex
	index map[string]entry
	segs  map[uint32]*segment
}

// entry is where a key's latest record is.
type entry struct {
	seg         *segment
	off         int64 // record offset in seg
	size        int64 // record length
	bodyAt      int   // body offset within the record
	contentType string
	metadata    map[string]string
}

// Option configures Open.
type Option func(*Store)

// WithFsync makes Put and Delete flush their record to stable storage
// before they return, so it also survives a power loss.
func WithFsync() Option { return func(s *Store) { s.fsync = true } }

// WithSegmentSize sets the size past which the log moves to a new
// segment (default DefaultSegmentSize). A record larger than that has a
// segment to itself.
func WithSegmentSize(n int64) Option { return func(s *Store) { s.segSize = max(n, 1) } }

// WithLogger sets where Open reports a torn tail it truncated, or objects
// in the layout of the earlier one-file-per-object version, which it does
// not read.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// Open opens the store in dir, creating the directory if needed, locks it
// against other Opens, and rebuilds the index from the segments,
// truncating a torn tail (see the package doc).
func Open(dir string, opts ...Option) (*Store, error) {
	s, err := open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

func open(dir string, opts []Option) (_ *Store, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:     abs,
		segSize: DefaultSegmentSize,
		log:     slog.New(slog.DiscardHandler),
		index:   make(map[string]entry),
		segs:    make(map[uint32]*segment),
	}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	if s.lock, err = lockDir(abs); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	ids, err := listSegments(abs)
	if err != nil {
		return nil, err
	}
	if info, err := os.Stat(filepath.Join(abs, oldTempDir)); err == nil && info.IsDir() {
		s.log.Warn("directory holds objects in the old one-file-per-object layout; they are not read", "dir", abs)
	}
	for _, id := range ids {
		if err := s.load(id); err != nil {
			return nil, fmt.Errorf("%s: %w", segName(id), err)
		}
	}
	if len(ids) == 0 {
		return s, s.rotate(1)
	}
	s.active = s.segs[ids[len(ids)-1]]
	s.w, err = os.OpenFile(s.active.path, os.O_WRONLY|os.O_APPEND, 0)
	return s, err
}

// lockDir takes the store's exclusive flock without waiting.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New("locked: the store is open elsewhere")
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}

// load opens segment id, replays its records into the index and
// truncates a torn tail.
func (s *Store) load(id uint32) error {
	path := filepath.Join(s.dir, segName(id))
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	g := &segment{id: id, path: path, r: f}
	s.segs[id] = g // closed by closeFiles on error
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	err = scan(f, size, func(r scanned) error { return s.replay(g, r) })
	var d *damage
	if !errors.As(err, &d) {
		g.size.Store(size)
		return err
	}
	if torn, terr := isTornTail(f, d.off, size); terr != nil || !torn {
		return cmp.Or(terr, err)
	}
	if err := truncate(path, d.off); err != nil {
		return fmt.Errorf("truncate torn tail at %d: %w", d.off, err)
	}
	s.log.Warn("truncated a torn record at the end of the log",
		"file", path, "offset", d.off, "bytes", size-d.off, "reason", d.err)
	g.size.Store(d.off)
	return nil
}

// replay applies one record read by Open to the index.
func (s *Store) replay(g *segment, r scanned) error {
	if err := ValidateKey(r.key); err != nil {
		return err
	}
	if r.h.op == opDelete {
		s.removeLocked(r.key)
		return nil
	}
	ct, md, err := decodeMeta(r.meta)
	if err != nil {
		return err
	}
	s.setLocked(r.key, entry{seg: g, off: r.off, size: r.h.size(), bodyAt: r.h.bodyAt(), contentType: ct, metadata: md})
	return nil
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// setLocked points key at e and keeps the segments' live counts. It needs
// mu held for writing, or no other goroutine (Open).
func (s *Store) setLocked(key string, e entry) {
	if old, ok := s.index[key]; ok {
		old.seg.live -= old.size
	}
	e.seg.live += e.size
	s.index[key] = e
}

func (s *Store) removeLocked(key string) {
	if old, ok := s.index[key]; ok {
		old.seg.live -= old.size
		delete(s.index, key)
	}
}

// Close closes the store's files and releases its lock. It waits for a
// Compact in progress to stop. Calls after Close return ErrClosed.
func (s *Store) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.closeFiles(); err != nil {
		return fmt.Errorf("close store %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) closeFiles() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
		s.w = nil
	}
	s.failed = ErrClosed
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.segs {
		errs = append(errs, g.close())
	}
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Put stores obj under key, replacing any object there.
func (s *Store) Put(ctx context.Context, key string, obj elastiq.Object) error {
	if err := s.put(ctx, key, obj); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, obj elastiq.Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	if int64(len(obj.Body)) > MaxBodyLen {
		return fmt.Errorf("body of %d bytes: more than %d", len(obj.Body), MaxBodyLen)
	}
	meta, err := encodeMeta(obj.ContentType, obj.Metadata)
	if err != nil {
		return err
	}
	rec := encodeRecord(opPut, key, meta, obj.Body)
	e := entry{
		size:        int64(len(rec)),
		bodyAt:      len(rec) - len(obj.Body),
		contentType: obj.ContentType,
		metadata:    maps.Clone(obj.Metadata),
	}
	if len(e.metadata) == 0 {
		e.metadata = nil
	}
	return s.write(key, rec, &e)
}

// Delete removes the object under key. Deleting a missing key is not an
// error and writes nothing.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	return s.write(key, encodeRecord(opDelete, key, nil, nil), nil)
}

// write appends rec, a record of key, to the log and applies it to the
// index: e (its seg and off filled in here) for a put, nil for a delete,
// which writes nothing when key is missing. With WithFsync it returns once
// the record is on disk.
func (s *Store) write(key string, rec []byte, e *entry) error {
	s.wmu.Lock()
	if _, ok := s.index[key]; !ok && e == nil && s.failed == nil { // the index changes only under wmu
		s.wmu.Unlock()
		return nil
	}
	g, off, err := s.appendLocked(rec)
	if err == nil {
		s.mu.Lock()
		if e != nil {
			e.seg, e.off = g, off
			s.setLocked(key, *e)
		} else {
			s.removeLocked(key)
		}
		s.mu.Unlock()
	}
	gen := s.gen
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	return s.durable(gen)
}

// appendLocked writes rec at the end of the log, moving to a new segment
// first if the active one is full, and returns where it went. It needs
// wmu held.
func (s *Store) appendLocked(rec []byte) (*segment, int64, error) {
	if s.failed != nil {
		return nil, 0, s.failed
	}
	n := int64(len(rec))
	if size := s.active.size.Load(); size > 0 && size+n > s.segSize {
		if err := s.rotate(s.active.id + 1); err != nil {
			return nil, 0, err
		}
	}
	g, off := s.active, s.active.size.Load()
	if _, err := s.w.Write(rec); err != nil {
		// Take a partial record back off, or the next one would follow
		// garbage and Open would call the segment corrupt.
		if terr := s.w.Truncate(off); terr != nil {
			s.failed = fmt.Errorf("log tail in doubt after a failed write: %w", terr)
		}
		return nil, 0, err
	}
	g.size.Store(off + n)
	s.gen++
	return g, off, nil
}

// rotate seals the active segment, if any, and makes segment id the
// active one. It needs wmu held, or no other goroutine (Open).
func (s *Store) rotate(id uint32) error {
	if s.w != nil {
		// With fsync, writes to the old segment that no flush has
		// covered yet must reach the disk: flush only syncs the active
		// segment.
		if s.fsync {
			if err := s.w.Sync(); err != nil {
				s.failed = fmt.Errorf("flush %s: %w", s.active.path, err)
				return s.failed
			}
		}
		if err := s.w.Close(); err != nil {
			s.failed = fmt.Errorf("close %s: %w", s.active.path, err)
			return s.failed
		}
		s.w = nil
	}
	g, w, err := createSegment(s.dir, id)
	if err != nil {
		s.failed = fmt.Errorf("create segment: %w", err)
		return s.failed
	}
	if s.fsync {
		if err := syncDir(s.dir); err != nil {
			g.close()
			w.Close()
			s.failed = fmt.Errorf("create segment: %w", err)
			return s.failed
		}
	}
	s.mu.Lock()
	s.segs[id] = g
	s.mu.Unlock()
	s.active, s.w = g, w
	return nil
}

// durable returns once write generation gen is on stable storage, if the
// store flushes at all. Writers that wait while another flushes find their
// write flushed with it (group commit).
func (s *Store) durable(gen uint64) error {
	if !s.fsync {
		return nil
	}
	return s.flush(gen)
}

// flush makes every write up to generation gen durable.
func (s *Store) flush(gen uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.syncedGen >= gen {
		return nil
	}
	s.wmu.Lock()
	target, g, failed := s.gen, s.active, s.failed
	s.wmu.Unlock()
	if failed != nil {
		return failed
	}
	// Writes before target went to g or to older segments, which rotate
	// flushed when it sealed them (it does when s.fsync is set, the only
	// case in which flush is called).
	s.flushes.Add(1)
	if err := g.sync(); err != nil {
		s.wmu.Lock()
		s.failed = cmp.Or(s.failed, fmt.Errorf("flush %s: %w", g.path, err))
		s.wmu.Unlock()
		return err
	}
	s.syncedGen = target
	return nil
}

// Get returns the object under key, or elastiq.ErrNotFound (wrapped).
func (s *Store) Get(ctx context.Context, key string) (elastiq.Object, error) {
	obj, err := s.get(ctx, key)
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	return obj, nil
}

func (s *Store) get(ctx context.Context, key string) (elastiq.Object, error) {
	for {
		e, err := s.lookup(ctx, key)
		if err != nil {
			return elastiq.Object{}, err
		}
		rec := make([]byte, e.size)
		err = e.seg.read(rec, e.off)
		if errors.Is(err, errSegmentGone) && !s.closing.Load() {
			continue // Compact moved the record: look again
		}
		if err != nil {
			return elastiq.Object{}, cmp.Or(s.closedErr(), err)
		}
		h, err := parseRecord(rec)
		if err != nil {
			return elastiq.Object{}, fmt.Errorf("%s offset %d: %w", e.seg.path, e.off, err)
		}
		if h.op != opPut || recordKey(h, rec) != key {
			return elastiq.Object{}, fmt.Errorf("%s offset %d: not the record of %s", e.seg.path, e.off, key)
		}
		return elastiq.Object{Body: rec[e.bodyAt:], ContentType: e.contentType, Metadata: maps.Clone(e.metadata)}, nil
	}
}

// Head returns the content type and metadata of the object under key, with
// a nil Body, or elastiq.ErrNotFound (wrapped).
func (s *Store) Head(ctx context.Context, key string) (elastiq.Object, error) {
	e, err := s.lookup(ctx, key)
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("head %s: %w", key, err)
	}
	return elastiq.Object{ContentType: e.contentType, Metadata: maps.Clone(e.metadata)}, nil
}

func (s *Store) lookup(ctx context.Context, key string) (entry, error) {
	if err := ctx.Err(); err != nil {
		return entry{}, err
	}
	if err := ValidateKey(key); err != nil {
		return entry{}, err
	}
	if err := s.closedErr(); err != nil {
		return entry{}, err
	}
	s.mu.RLock()
	e, ok := s.index[key]
	s.mu.RUnlock()
	if !ok {
		return entry{}, elastiq.ErrNotFound
	}
	return e, nil
}

func (s *Store) closedErr() error {
	if s.closing.Load() {
		return ErrClosed
	}
	return nil
}

// List returns the keys that start with prefix, in lexical order. The
// prefix need not end at a slash: "input/01" lists input/01….
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if err := s.closedErr(); err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	var keys []string
	s.mu.RLock()
	for k := range s.index {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// Stats describes the log.
type Stats struct {
	Keys     int
	Segments int
	// Bytes is the size of all segments; LiveBytes the part of it that
	// holds the current records of the keys. The rest is what Compact
	// would reclaim, less the active segment's share.
	Bytes     int64
	LiveBytes int64
	// Flushes counts the fsyncs of group commit (WithFsync).
	Flushes int64
}

// Stats reports the number of keys and the log's size.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Keys: len(s.index), Segments: len(s.segs), Flushes: s.flushes.Load()}
	for _, g := range s.segs {
		st.Bytes += g.size.Load()
		st.LiveBytes += g.live
	}
	return st
}
