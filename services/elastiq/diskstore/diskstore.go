// Package diskstore is an elastiq.ObjectStore on a local directory, so that
// the embedded stack's accepted images and results survive a restart.
//
// # Layout
//
// A key such as input/01jf… is the file <dir>/input/01jf…; the slashes of a
// key are directories. Keys are validated: 1 to 1024 characters of
// [A-Za-z0-9._/-], no leading or trailing slash, no empty, "." or ".."
// segment. As on a file system (and unlike S3), a key cannot be both an
// object and the directory of another key: with input/a stored, a Put of
// input/a/b fails.
//
// # Atomicity
//
// Each object is one file: a format line, a JSON header line with the
// content type, metadata and body size, then the body bytes. A Put writes
// the whole file under a temporary name and renames it over the key's name,
// so readers see the old object or the new one, never a mix, and an object
// with its metadata is either fully there or absent. Keeping metadata in the
// same file rather than in a sidecar is deliberate: with two files, no
// order of the two renames keeps an overwritten object consistent across a
// crash. Concurrent Puts of one key leave exactly one of them (last rename
// wins).
//
// Temporary files have names that start with "~", a character keys may
// not contain, so they never collide with a key and List skips them. The
// directory tree must be one file system (rename does not cross mounts).
//
// # Latency
//
// Creating a file is the expensive step of a Put: on the ext4 disk of the
// 2-core development VM it takes 0.2 to 0.9 ms alone and far more when 100
// Puts create files at once (a burst of 100 Puts: p99 0.3 s), against about
// 40 µs for the write, close and rename of a file that already exists. So
// by default a background goroutine keeps empty temporary files created
// ahead (WithSpareFiles), in a directory of its own, <dir>/~tmp/s-*, locked
// with flock(2) while the Store is open; it only creates one when no Put
// has run for a couple of milliseconds, since concurrent creation slows the
// Puts down (the same burst with spares: p99 1 to 4 ms). Put falls back to
// creating a temporary file next to the key's file when the spares run out
// or after Close. Close stops the goroutine and removes its directory. Open
// removes what a crashed process left behind: the spare directories nobody
// holds locked, and stray temporary files older than a minute.
//
// # Durability
//
// By default a Put does not fsync: a stored object survives the process
// crashing or restarting (the data is in the OS page cache), but not a power
// loss or kernel crash. WithFsync flushes the file and its directory before
// Put returns, at the cost of milliseconds on the latency hot path.
package diskstore

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// MaxKeyLen is the longest key, as with S3.
const MaxKeyLen = 1024

// DefaultSpareFiles is how many temporary files Open keeps created ahead.
const DefaultSpareFiles = 128

const (
	magic      = "elastiq-object/1\n"
	tempDir    = "~tmp"
	spareDir   = "s-"
	tempPrefix = "~put-"
	lockFile   = "lock"
	// staleTemp is how old a stray temporary file must be for Open to
	// remove it: older than any Put in progress.
	staleTemp = time.Minute
	// maxHeader bounds the header line Head and Get are willing to read.
	maxHeader = 1 << 20
	// retryCreate is how long the spare-file goroutine waits after an
	// error (a full disk, say) before it tries again.
	retryCreate = time.Second
	// spareQuiet is how long no Put must have run before the spare-file
	// goroutine creates another file.
	spareQuiet = 2 * time.Millisecond
)

// Store is an object store rooted at a directory. It is safe for
// concurrent use.
type Store struct {
	dir    string
	fsync  bool
	nSpare int

	spareDir string        // this Store's directory of spare files
	lock     *os.File      // flock held on spareDir/lock while open
	spares   chan *os.File // nil without spare files
	epoch    time.Time
	lastPut  atomic.Int64 // when a Put last ran, as time since epoch
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Option configures Open.
type Option func(*Store)

// WithFsync makes Put flush the object to stable storage before it
// returns, so it also survives a power loss.
func WithFsync() Option { return func(s *Store) { s.fsync = true } }

// WithSpareFiles sets how many empty temporary files a background
// goroutine keeps ready for Put (default DefaultSpareFiles); zero turns
// this off and Put creates each one itself.
func WithSpareFiles(n int) Option { return func(s *Store) { s.nSpare = max(n, 0) } }

// Open opens the store in dir, creating the directory if needed and
// removing temporary files left behind by an earlier process. Close the
// Store to stop its background goroutine.
func Open(dir string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: abs, nSpare: DefaultSpareFiles, epoch: time.Now()}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(filepath.Join(abs, tempDir), 0o755); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := removeLeftovers(abs, time.Now().Add(-staleTemp)); err != nil {
		return nil, fmt.Errorf("open store %s: remove temporary files: %w", dir, err)
	}
	s.cancel = func() {}
	if s.nSpare > 0 {
		if err := s.lockSpareDir(); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		var ctx context.Context
		ctx, s.cancel = context.WithCancel(context.Background())
		s.spares = make(chan *os.File, s.nSpare)
		s.wg.Add(1)
		go s.makeSpares(ctx)
	}
	return s, nil
}

// lockSpareDir creates this Store's spare-file directory and locks it so
// that another Open on the same directory leaves it alone.
func (s *Store) lockSpareDir() error {
	d, err := os.MkdirTemp(filepath.Join(s.dir, tempDir), spareDir)
	if err != nil {
		return err
	}
	lock, err := tryLock(filepath.Join(d, lockFile))
	if err != nil || lock == nil {
		os.RemoveAll(d)
		return fmt.Errorf("lock %s: %w", d, cmp.Or(err, errors.New("held by another store")))
	}
	s.spareDir, s.lock = d, lock
	return nil
}

// tryLock opens (creating) path and takes an exclusive flock on it without
// waiting. It returns nil and no error when someone else holds the lock.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

// removeLeftovers removes the spare directories of Stores that are gone
// (their lock is free) and the stray temporary files of Puts that
// started before staleBefore.
func removeLeftovers(root string, staleBefore time.Time) error {
	tmp := filepath.Join(root, tempDir)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(tmp, e.Name())
		if !e.IsDir() {
			if err := os.Remove(p); err != nil {
				return err
			}
			continue
		}
		lock, err := tryLock(filepath.Join(p, lockFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if lock == nil && err == nil {
			continue // a live Store's
		}
		err = os.RemoveAll(p)
		if lock != nil {
			lock.Close()
		}
		if err != nil {
			return err
		}
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == tempDir {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().Before(staleBefore) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// Close stops the spare-file goroutine and removes the spare files. Put,
// Get, Head and List keep working after Close, without spares.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.lock == nil {
		return nil
	}
	var errs []error
	for drained := false; !drained; {
		select {
		case f := <-s.spares:
			errs = append(errs, f.Close())
		default:
			drained = true
		}
	}
	errs = append(errs, os.RemoveAll(s.spareDir), s.lock.Close())
	s.lock = nil
	return errors.Join(errs...)
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// makeSpares keeps s.spares full of new empty temporary files.
func (s *Store) makeSpares(ctx context.Context) {
	defer s.wg.Done()
	wait := time.NewTimer(retryCreate)
	wait.Stop()
	defer wait.Stop()
	sleep := func(d time.Duration) bool {
		wait.Reset(d)
		select {
		case <-wait.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		// Creating a file while Puts run slows them down (the file system
		// serialises them), so wait for a quiet moment.
		if idle := time.Since(s.epoch) - time.Duration(s.lastPut.Load()); idle < spareQuiet {
			if !sleep(spareQuiet - idle) {
				return
			}
			continue
		}
		f, err := os.CreateTemp(s.spareDir, tempPrefix+"*")
		if err != nil {
			// Put creates its own file meanwhile, and reports the error.
			if !sleep(retryCreate) {
				return
			}
			continue
		}
		select {
		case s.spares <- f:
		case <-ctx.Done():
			discard(f)
			return
		}
	}
}

// tempFile returns a spare temporary file, or creates one in dir.
func (s *Store) tempFile(dir string) (*os.File, error) {
	select {
	case f := <-s.spares:
		return f, nil
	default:
		return os.CreateTemp(dir, tempPrefix+"*")
	}
}

func discard(f *os.File) error {
	return errors.Join(f.Close(), os.Remove(f.Name()))
}

// header is the JSON line between the format line and the body.
type header struct {
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Size        int64             `json:"size"`
}

// Put stores obj under key, replacing any object there.
func (s *Store) Put(ctx context.Context, key string, obj elastiq.Object) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	s.lastPut.Store(int64(time.Since(s.epoch)))
	err := s.put(key, obj)
	s.lastPut.Store(int64(time.Since(s.epoch)))
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(key string, obj elastiq.Object) (err error) {
	hdr, err := json.Marshal(header{ContentType: obj.ContentType, Metadata: obj.Metadata, Size: int64(len(obj.Body))})
	if err != nil {
		return err
	}
	name := s.path(key)
	dir := filepath.Dir(name)
	created, err := s.mkdirs(dir)
	if err != nil {
		return err
	}
	f, err := s.tempFile(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			discard(f)
		}
	}()
	buf := make([]byte, 0, len(magic)+len(hdr)+1+len(obj.Body))
	buf = append(buf, magic...)
	buf = append(buf, hdr...)
	buf = append(buf, '\n')
	buf = append(buf, obj.Body...)
	if _, err := f.Write(buf); err != nil {
		return err
	}
	if s.fsync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	if s.fsync {
		return s.syncDirs(dir, created)
	}
	return nil
}

// mkdirs creates dir and its parents and reports whether it had to.
func (s *Store) mkdirs(dir string) (created bool, err error) {
	if info, err := os.Stat(dir); err == nil && info.IsDir() {
		return false, nil
	}
	return true, os.MkdirAll(dir, 0o755)
}

// syncDirs flushes dir, whose entry for the new file changed, and when the
// directories were just created, each parent up to the root as well.
func (s *Store) syncDirs(dir string, created bool) error {
	for {
		if err := syncDir(dir); err != nil {
			return err
		}
		if !created || dir == s.dir {
			return nil
		}
		dir = filepath.Dir(dir)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get returns the object under key, or elastiq.ErrNotFound (wrapped).
func (s *Store) Get(ctx context.Context, key string) (elastiq.Object, error) {
	obj, err := s.read(ctx, key, true)
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	return obj, nil
}

// Head returns the content type and metadata of the object under key, with
// a nil Body, or elastiq.ErrNotFound (wrapped).
func (s *Store) Head(ctx context.Context, key string) (elastiq.Object, error) {
	obj, err := s.read(ctx, key, false)
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("head %s: %w", key, err)
	}
	return obj, nil
}

func (s *Store) read(ctx context.Context, key string, withBody bool) (elastiq.Object, error) {
	if err := ctx.Err(); err != nil {
		return elastiq.Object{}, err
	}
	if err := ValidateKey(key); err != nil {
		return elastiq.Object{}, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return elastiq.Object{}, elastiq.ErrNotFound
		}
		return elastiq.Object{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return elastiq.Object{}, err
	}
	if info.IsDir() {
		return elastiq.Object{}, elastiq.ErrNotFound
	}
	r := bufio.NewReaderSize(f, 4096)
	hdr, n, err := readHeader(r)
	if err != nil {
		return elastiq.Object{}, err
	}
	// A stored file is never written in place (Put renames a new one over
	// it), so its size as opened is final.
	if want := info.Size() - n; hdr.Size != want {
		return elastiq.Object{}, fmt.Errorf("corrupt object: header says %d body bytes, file has %d", hdr.Size, want)
	}
	obj := elastiq.Object{ContentType: hdr.ContentType, Metadata: hdr.Metadata}
	if !withBody {
		return obj, nil
	}
	obj.Body = make([]byte, hdr.Size)
	if _, err := io.ReadFull(r, obj.Body); err != nil {
		return elastiq.Object{}, fmt.Errorf("corrupt object: read %d bytes: %w", hdr.Size, err)
	}
	return obj, nil
}

// readHeader reads the format and header lines and returns the header and
// the number of bytes they took.
func readHeader(r *bufio.Reader) (header, int64, error) {
	var hdr header
	first, err := r.ReadString('\n')
	if err != nil || first != magic {
		return hdr, 0, fmt.Errorf("corrupt object: no %q format line", strings.TrimSpace(magic))
	}
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) || len(line) > maxHeader {
			return hdr, 0, fmt.Errorf("corrupt object: header line: %w", err)
		}
	}
	if err := json.Unmarshal(bytes.TrimSuffix(line, []byte("\n")), &hdr); err != nil {
		return hdr, 0, fmt.Errorf("corrupt object: header: %w", err)
	}
	return hdr, int64(len(first) + len(line)), nil
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
	// Walk only the deepest directory the prefix names in full.
	base := prefix[:strings.LastIndex(prefix, "/")+1]
	root := s.dir
	if base != "" {
		root = s.path(strings.TrimSuffix(base, "/"))
	}
	var keys []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), "~") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p == root {
				return nil
			}
			// Skip a subtree that cannot hold a match.
			dirKey := s.key(p) + "/"
			if !strings.HasPrefix(dirKey, prefix) && !strings.HasPrefix(prefix, dirKey) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if k := s.key(p); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	// WalkDir orders by path elements ("a/b" before "a.b"), keys compare
	// as strings ("a.b" before "a/b").
	slices.Sort(keys)
	return keys, nil
}

func (s *Store) path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

func (s *Store) key(p string) string {
	rel, _ := filepath.Rel(s.dir, p)
	return filepath.ToSlash(rel)
}

// ValidateKey reports whether key can name an object: 1 to MaxKeyLen
// characters of [A-Za-z0-9._/-], slash-separated segments that are neither
// empty nor "." nor "..".
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key of %d bytes: longer than %d", len(key), MaxKeyLen)
	}
	if err := validateChars(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key %q: empty, %q or %q segment", key, ".", "..")
		}
	}
	return nil
}

// validatePrefix accepts "" and any prefix of a valid key.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return fmt.Errorf("prefix of %d bytes: longer than %d", len(prefix), MaxKeyLen)
	}
	if err := validateChars(prefix); err != nil {
		return err
	}
	// Every segment but the last is complete.
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := ValidateKey(prefix[:i]); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	return nil
}

func validateChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("key %q: character %q at %d not in [A-Za-z0-9._/-]", s, c, i)
		}
	}
	return nil
}
