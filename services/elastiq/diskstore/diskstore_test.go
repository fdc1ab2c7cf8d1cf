package diskstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
)

var _ elastiq.ObjectStore = (*Store)(nil)

func openStore(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// reopen closes s and opens its directory again.
func reopen(t *testing.T, s *Store, opts ...Option) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	return openStore(t, s.Dir(), opts...)
}

func put(t *testing.T, s *Store, key string, obj elastiq.Object) {
	t.Helper()
	if err := s.Put(context.Background(), key, obj); err != nil {
		t.Fatalf("Put(%s) = %v", key, err)
	}
}

func del(t *testing.T, s *Store, key string) {
	t.Helper()
	if err := s.Delete(context.Background(), key); err != nil {
		t.Fatalf("Delete(%s) = %v", key, err)
	}
}

func wantObject(t *testing.T, s *Store, key string, want elastiq.Object) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s) = %v", key, err)
	}
	if !bytes.Equal(got.Body, want.Body) || got.ContentType != want.ContentType || !maps.Equal(got.Metadata, want.Metadata) {
		t.Fatalf("Get(%s) = %.40q %q %v, want %.40q %q %v", key, got.Body, got.ContentType, got.Metadata, want.Body, want.ContentType, want.Metadata)
	}
	head, err := s.Head(ctx, key)
	if err != nil {
		t.Fatalf("Head(%s) = %v", key, err)
	}
	if head.Body != nil || head.ContentType != want.ContentType || !maps.Equal(head.Metadata, want.Metadata) {
		t.Fatalf("Head(%s) = %q %q %v, want nil body, %q %v", key, head.Body, head.ContentType, head.Metadata, want.ContentType, want.Metadata)
	}
}

func wantMissing(t *testing.T, s *Store, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Get(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
		t.Fatalf("Get(%s) = %v, want ErrNotFound", key, err)
	}
	if _, err := s.Head(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
		t.Fatalf("Head(%s) = %v, want ErrNotFound", key, err)
	}
}

func wantList(t *testing.T, s *Store, prefix string, want []string) {
	t.Helper()
	got, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q) = %v", prefix, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
	}
}

// objectFor makes an object whose body, content type and metadata all say
// n, so a reader can tell a torn object from a whole one.
func objectFor(n int) elastiq.Object {
	s := strconv.Itoa(n)
	return elastiq.Object{
		Body:        bytes.Repeat([]byte(s+","), 100+n%50*37),
		ContentType: "text/" + s,
		Metadata:    map[string]string{"n": s},
	}
}

func segPath(dir string, id uint32) string { return filepath.Join(dir, segName(id)) }

func TestPutGetHead(t *testing.T) {
	s := openStore(t, t.TempDir())
	tests := []struct {
		name string
		key  string
		obj  elastiq.Object
	}{
		{
			name: "input with metadata",
			key:  "input/01jf2x3y4z5a6b7c8d9e0f1g2h",
			obj: elastiq.Object{
				Body:        []byte("\xff\xd8\xff\xe0 jpeg\nwith newlines\n"),
				ContentType: "image/jpeg",
				Metadata:    map[string]string{elastiq.MetaFileName: "test_00.jpg", "odd": "a\nb \"c\"", "": "empty key", "é": ""},
			},
		},
		{name: "empty body, no metadata", key: "output/x", obj: elastiq.Object{Body: []byte{}}},
		{name: "dots and dashes", key: "a-b/c.d_e/..f", obj: elastiq.Object{Body: []byte("z"), ContentType: "text/plain"}},
		{name: "longest key", key: strings.Repeat("k", MaxKeyLen), obj: objectFor(7)},
		{name: "large body", key: "input/large", obj: elastiq.Object{Body: bytes.Repeat([]byte("0123456789"), 300_000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(t, s, tt.key, tt.obj)
			wantObject(t, s, tt.key, tt.obj)
		})
	}
	s = reopen(t, s)
	for _, tt := range tests {
		wantObject(t, s, tt.key, tt.obj)
	}
}

// TestCallerOwnsMetadata checks that the store keeps its own copy of the
// metadata: changing the map given to Put or returned by Get changes
// nothing stored.
func TestCallerOwnsMetadata(t *testing.T) {
	s := openStore(t, t.TempDir())
	md := map[string]string{"a": "1"}
	put(t, s, "k", elastiq.Object{Body: []byte("b"), Metadata: md})
	md["a"] = "changed"
	got, err := s.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	got.Metadata["a"] = "changed too"
	wantObject(t, s, "k", elastiq.Object{Body: []byte("b"), Metadata: map[string]string{"a": "1"}})
}

func TestNotFound(t *testing.T) {
	s := openStore(t, t.TempDir())
	put(t, s, "input/a", elastiq.Object{Body: []byte("a")})
	for _, key := range []string{"input/b", "output/a", "input", "input/a/b"} {
		t.Run(key, func(t *testing.T) {
			wantMissing(t, s, key)
		})
	}
}

func TestOverwriteLastWins(t *testing.T) {
	s := openStore(t, t.TempDir())
	put(t, s, "output/r", elastiq.Object{Body: []byte("first"), ContentType: "a", Metadata: map[string]string{"k": "1"}})
	second := elastiq.Object{Body: []byte("second"), ContentType: "b"}
	put(t, s, "output/r", objectFor(3))
	put(t, s, "output/r", second)
	wantObject(t, s, "output/r", second)
	wantList(t, s, "", []string{"output/r"})

	s = reopen(t, s)
	wantObject(t, s, "output/r", second)
	wantList(t, s, "", []string{"output/r"})
	if st := s.Stats(); st.Keys != 1 || st.LiveBytes >= st.Bytes {
		t.Errorf("Stats() = %+v, want 1 key and dead bytes", st)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	kept := objectFor(1)
	put(t, s, "input/kept", kept)
	put(t, s, "input/gone", objectFor(2))
	del(t, s, "input/gone")
	wantMissing(t, s, "input/gone")
	wantList(t, s, "input/", []string{"input/kept"})

	before := s.Stats()
	for _, key := range []string{"input/gone", "input/never"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%s) of a missing key = %v, want nil", key, err)
		}
	}
	if after := s.Stats(); after != before {
		t.Errorf("Stats() after deleting missing keys = %+v, want %+v (nothing written)", after, before)
	}

	s = reopen(t, s)
	wantMissing(t, s, "input/gone")
	wantObject(t, s, "input/kept", kept)

	// Put after Delete brings the key back, also across a restart.
	again := objectFor(3)
	put(t, s, "input/gone", again)
	s = reopen(t, s)
	wantObject(t, s, "input/gone", again)
	wantList(t, s, "input/", []string{"input/gone", "input/kept"})
}

// model is what a store should hold after a series of Puts and Deletes.
type model map[string]elastiq.Object

func (m model) check(t *testing.T, s *Store) {
	t.Helper()
	for k, obj := range m {
		wantObject(t, s, k, obj)
	}
	wantList(t, s, "", slices.Sorted(maps.Keys(m)))
}

// fill puts n objects, overwrites every third and deletes every fifth.
func fill(t *testing.T, s *Store, n int) model {
	t.Helper()
	m := model{}
	for i := range n {
		k := fmt.Sprintf("input/%04d", i)
		put(t, s, k, objectFor(i))
		m[k] = objectFor(i)
	}
	for i := 0; i < n; i += 3 {
		k := fmt.Sprintf("input/%04d", i)
		put(t, s, k, objectFor(i+1))
		m[k] = objectFor(i + 1)
	}
	for i := 0; i < n; i += 5 {
		k := fmt.Sprintf("input/%04d", i)
		del(t, s, k)
		delete(m, k)
	}
	return m
}

func TestReopenManySegments(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(16 << 10)}
	s := openStore(t, dir, opts...)
	m := fill(t, s, 300)
	m.check(t, s)
	ids, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < 10 {
		t.Fatalf("%d segments after 400 Puts of about 2 KiB into 16 KiB segments, want at least 10", len(ids))
	}
	for _, id := range ids[:len(ids)-1] {
		info, err := os.Stat(segPath(dir, id))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > 16<<10 {
			t.Errorf("%s holds %d bytes, more than the segment size", segName(id), info.Size())
		}
	}

	s = reopen(t, s, opts...)
	m.check(t, s)
	if st := s.Stats(); st.Keys != len(m) || st.Segments != len(ids) {
		t.Errorf("Stats() after reopen = %+v, want %d keys in %d segments", st, len(m), len(ids))
	}
	// The reopened store appends to the last segment and rotates on.
	put(t, s, "output/new", objectFor(9))
	m["output/new"] = objectFor(9)
	s = reopen(t, s, opts...)
	m.check(t, s)
}

func TestTornTail(t *testing.T) {
	last := encodeRecord(opPut, "input/torn", []byte{0, 0}, bytes.Repeat([]byte("t"), 500))
	flipped := slices.Clone(last)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		tail []byte
	}{
		{name: "part of a header", tail: last[:7]},
		{name: "header only", tail: last[:headerLen]},
		{name: "half a body", tail: last[:300]},
		{name: "all but one byte", tail: last[:len(last)-1]},
		{name: "whole record with a bad CRC", tail: flipped},
		{name: "zeroed block", tail: make([]byte, 4096)},
		{name: "torn record then zeros", tail: append(slices.Clone(last[:100]), make([]byte, 1000)...)},
	}
	for _, tt := range tests {
		for _, which := range []string{"newest", "oldest"} {
			t.Run(tt.name+"/"+which, func(t *testing.T) {
				dir := t.TempDir()
				opts := []Option{WithSegmentSize(16 << 10)}
				s := openStore(t, dir, opts...)
				m := fill(t, s, 60)
				id := s.active.id
				if which == "oldest" {
					id = 1
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if id == 1 && which == "newest" {
					t.Fatalf("fill(60) wrote one segment, want several")
				}
				path := segPath(dir, id)
				whole, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(slices.Clone(whole), tt.tail...), 0o644); err != nil {
					t.Fatal(err)
				}

				var logged bytes.Buffer
				s = openStore(t, dir, append(opts, WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))...)
				m.check(t, s)
				if want := fmt.Sprintf("file=%s offset=%d", path, len(whole)); !strings.Contains(logged.String(), "torn") || !strings.Contains(logged.String(), want) {
					t.Errorf("Open logged %q, want a warning about the torn record with %q", logged.String(), want)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, whole) {
					t.Errorf("after Open %s holds %d bytes, want the %d before the torn record", segName(id), len(got), len(whole))
				}
				// New records follow the whole ones directly.
				put(t, s, "input/after", objectFor(1))
				m["input/after"] = objectFor(1)
				s = reopen(t, s, opts...)
				m.check(t, s)
			})
		}
	}
}

func TestCorruptionFailsOpen(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the segment files of a store filled by fill with
		// 16 KiB segments, and returns the file and offset Open must name.
		damage func(t *testing.T, dir string, s *Store) (file string, off int64)
	}{
		{
			name: "flipped body byte in the oldest segment",
			damage: func(t *testing.T, dir string, s *Store) (string, int64) {
				e := s.index["input/0001"]
				flip(t, e.seg.path, e.off+e.size-1)
				return e.seg.path, e.off
			},
		},
		{
			name: "flipped key length",
			damage: func(t *testing.T, dir string, s *Store) (string, int64) {
				e := s.index["input/0002"]
				flip(t, e.seg.path, e.off+10)
				return e.seg.path, e.off
			},
		},
		{
			name: "bad magic in the newest segment",
			damage: func(t *testing.T, dir string, s *Store) (string, int64) {
				e := s.index["input/0003"]
				e.seg = s.active
				e.off = 0
				flip(t, e.seg.path, 0)
				return e.seg.path, 0
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := []Option{WithSegmentSize(16 << 10)}
			s := openStore(t, dir, opts...)
			fill(t, s, 100)
			file, off := tt.damage(t, dir, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, opts...)
			if err == nil {
				s.Close()
				t.Fatalf("Open(damaged store) = nil error, want one naming %s offset %d", filepath.Base(file), off)
			}
			if want := fmt.Sprintf("%s: offset %d:", filepath.Base(file), off); !strings.Contains(err.Error(), want) {
				t.Errorf("Open(damaged store) = %v, want an error containing %q", err, want)
			}
			// The failed Open released the lock.
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			openStore(t, dir, opts...)
		})
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGetChecksRecord(t *testing.T) {
	s := openStore(t, t.TempDir())
	obj := objectFor(4)
	put(t, s, "output/c", obj)
	e := s.index["output/c"]
	flip(t, e.seg.path, e.off+e.size-2)
	if got, err := s.Get(context.Background(), "output/c"); err == nil || errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("Get(damaged) = %.20q, %v; want a CRC error", got.Body, err)
	}
	if _, err := s.Head(context.Background(), "output/c"); err != nil {
		t.Errorf("Head(damaged body) = %v, want nil (memory only)", err)
	}
}

// TestWriteFailure makes the active segment's writer fail (it swaps in a
// read-only handle, so that the undo of the failed write fails too): the
// store must refuse further writes, keep serving reads, and reopen with
// the data written before.
func TestWriteFailure(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	kept := objectFor(1)
	put(t, s, "input/kept", kept)
	ro, err := os.Open(s.active.path)
	if err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	w := s.w
	s.w = ro
	s.wmu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	if err := s.Put(ctx, "input/lost", objectFor(2)); err == nil {
		t.Fatalf("Put with a failing writer = nil, want an error")
	}
	err = s.Put(ctx, "input/later", objectFor(3))
	if err == nil || !strings.Contains(err.Error(), "in doubt") {
		t.Errorf("Put after a failed write and undo = %v, want the log-in-doubt error", err)
	}
	if err := s.Delete(ctx, "input/kept"); err == nil {
		t.Errorf("Delete after a failed write and undo = nil, want an error")
	}
	wantObject(t, s, "input/kept", kept)
	wantMissing(t, s, "input/lost")

	s = reopen(t, s)
	model{"input/kept": kept}.check(t, s)
}

func TestBadKeys(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	tests := []struct {
		name string
		key  string
	}{
		{name: "empty", key: ""},
		{name: "absolute", key: "/etc/passwd"},
		{name: "dot dot", key: "../x"},
		{name: "inner dot dot", key: "input/../../x"},
		{name: "dot", key: "input/./x"},
		{name: "only dot dot", key: ".."},
		{name: "empty segment", key: "input//x"},
		{name: "trailing slash", key: "input/"},
		{name: "space", key: "input/a b"},
		{name: "backslash", key: `input\x`},
		{name: "non-ASCII", key: "input/é"},
		{name: "tilde", key: "input/~put-1"},
		{name: "NUL", key: "input/a\x00"},
		{name: "too long", key: strings.Repeat("a", MaxKeyLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(ctx, tt.key, elastiq.Object{Body: []byte("x")}); err == nil {
				t.Errorf("Put(%q) = nil, want an error", tt.key)
			}
			if _, err := s.Get(ctx, tt.key); err == nil || errors.Is(err, elastiq.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want a key error", tt.key, err)
			}
			if _, err := s.Head(ctx, tt.key); err == nil || errors.Is(err, elastiq.ErrNotFound) {
				t.Errorf("Head(%q) = %v, want a key error", tt.key, err)
			}
			if err := s.Delete(ctx, tt.key); err == nil {
				t.Errorf("Delete(%q) = nil, want a key error", tt.key)
			}
		})
	}
	if st := s.Stats(); st.Bytes != 0 {
		t.Errorf("Stats() = %+v after bad keys only, want nothing written", st)
	}
	wantList(t, s, "", nil)
}

func TestTooMuchMetadata(t *testing.T) {
	s := openStore(t, t.TempDir())
	obj := elastiq.Object{Metadata: map[string]string{"big": strings.Repeat("m", MaxMetaLen)}}
	if err := s.Put(context.Background(), "k", obj); err == nil {
		t.Errorf("Put(%d bytes of metadata) = nil, want an error", MaxMetaLen)
	}
	wantMissing(t, s, "k")
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for _, k := range []string{"output/b", "input/b", "input/a", "a.b", "a/b", "input/ab/c", "inputs", "input/a/b"} {
		put(t, s, k, elastiq.Object{Body: []byte(k)})
	}
	put(t, s, "input/deleted", elastiq.Object{})
	del(t, s, "input/deleted")
	tests := []struct {
		prefix string
		want   []string
	}{
		{prefix: "", want: []string{"a.b", "a/b", "input/a", "input/a/b", "input/ab/c", "input/b", "inputs", "output/b"}},
		{prefix: "input/", want: []string{"input/a", "input/a/b", "input/ab/c", "input/b"}},
		{prefix: "input", want: []string{"input/a", "input/a/b", "input/ab/c", "input/b", "inputs"}},
		{prefix: "input/a", want: []string{"input/a", "input/a/b", "input/ab/c"}},
		{prefix: "input/a/", want: []string{"input/a/b"}},
		{prefix: "input/ab/", want: []string{"input/ab/c"}},
		{prefix: "output/", want: []string{"output/b"}},
		{prefix: "missing/", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			wantList(t, s, tt.prefix, tt.want)
		})
	}
	for _, bad := range []string{"../", "/input", "input//", "a b"} {
		if got, err := s.List(ctx, bad); err == nil {
			t.Errorf("List(%q) = %q, nil; want an error", bad, got)
		}
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	put(t, s, "input/a", elastiq.Object{Body: []byte("a")})
	if other, err := Open(dir); err == nil {
		other.Close()
		t.Fatalf("second Open(%s) while open = nil error, want locked", dir)
	} else if !strings.Contains(err.Error(), "locked") {
		t.Errorf("second Open(%s) = %v, want a lock error", dir, err)
	}
	// The refused Open changed nothing.
	wantObject(t, s, "input/a", elastiq.Object{Body: []byte("a")})
	s = reopen(t, s)
	wantObject(t, s, "input/a", elastiq.Object{Body: []byte("a")})
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "input/a", elastiq.Object{Body: []byte("a")})
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	_, getErr := s.Get(ctx, "input/a")
	_, headErr := s.Head(ctx, "input/a")
	_, listErr := s.List(ctx, "")
	for _, tt := range []struct {
		name string
		err  error
	}{
		{name: "Put", err: s.Put(ctx, "input/b", elastiq.Object{})},
		{name: "Get", err: getErr},
		{name: "Head", err: headErr},
		{name: "List", err: listErr},
		{name: "Delete", err: s.Delete(ctx, "input/a")},
		{name: "Compact", err: s.Compact(ctx)},
	} {
		if !errors.Is(tt.err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tt.name, tt.err)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := openStore(t, t.TempDir())
	if err := s.Put(ctx, "input/a", elastiq.Object{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx, "input/a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List(cancelled) = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "input/a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete(cancelled) = %v, want context.Canceled", err)
	}
	if err := s.Compact(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Compact(cancelled) = %v, want context.Canceled", err)
	}
}

// TestConcurrent has writers put and delete their own keys and race on a
// shared one while readers check that every read is one whole Put, and
// then checks the final state, also after a reopen.
func TestConcurrent(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []Option
	}{
		{name: "no fsync", opts: []Option{WithSegmentSize(64 << 10)}},
		{name: "fsync", opts: []Option{WithSegmentSize(64 << 10), WithFsync()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, t.TempDir(), tt.opts...)
			const shared = "output/race"
			put(t, s, shared, objectFor(0))

			const writers, perWriter = 6, 40
			models := make([]model, writers)
			var wg sync.WaitGroup
			for w := range writers {
				models[w] = model{}
				wg.Go(func() {
					for i := range perWriter {
						n := w*1000 + i
						if err := s.Put(ctx, shared, objectFor(n)); err != nil {
							t.Errorf("Put(%s) = %v", shared, err)
						}
						k := fmt.Sprintf("input/w%d-%d", w, i%10)
						if i%7 == 6 {
							if err := s.Delete(ctx, k); err != nil {
								t.Errorf("Delete(%s) = %v", k, err)
							}
							delete(models[w], k)
							continue
						}
						if err := s.Put(ctx, k, objectFor(n)); err != nil {
							t.Errorf("Put(%s) = %v", k, err)
						}
						models[w][k] = objectFor(n)
					}
				})
			}
			for range 3 {
				wg.Go(func() {
					for range 150 {
						got, err := s.Get(ctx, shared)
						if err != nil {
							t.Errorf("Get during Puts = %v", err)
							return
						}
						n, err := strconv.Atoi(got.Metadata["n"])
						want := objectFor(n)
						if err != nil || got.ContentType != want.ContentType || !bytes.Equal(got.Body, want.Body) {
							t.Errorf("Get during Puts = torn object: metadata %v, type %q, %d body bytes", got.Metadata, got.ContentType, len(got.Body))
							return
						}
						if _, err := s.List(ctx, "input/"); err != nil {
							t.Errorf("List during Puts = %v", err)
							return
						}
					}
				})
			}
			wg.Wait()

			final, err := s.Get(ctx, shared)
			if err != nil {
				t.Fatal(err)
			}
			all := model{shared: final}
			for _, m := range models {
				maps.Copy(all, m)
			}
			all.check(t, s)
			s = reopen(t, s, tt.opts...)
			all.check(t, s)
		})
	}
}

func TestCompact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(16 << 10)}
	s := openStore(t, dir, opts...)
	m := fill(t, s, 200)
	before := s.Stats()
	if before.LiveBytes >= before.Bytes {
		t.Fatalf("Stats() before Compact = %+v, want dead bytes", before)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact() = %v", err)
	}
	after := s.Stats()
	if after.Bytes != after.LiveBytes || after.LiveBytes != before.LiveBytes || after.Keys != len(m) {
		t.Errorf("Stats() after Compact = %+v, want %d keys and %d bytes, all live", after, len(m), before.LiveBytes)
	}
	ids, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != after.Segments || len(ids) >= before.Segments {
		t.Errorf("%d segment files after Compact, Stats says %d, before %d; want fewer", len(ids), after.Segments, before.Segments)
	}
	m.check(t, s)

	// With nothing dead, Compact leaves the files alone.
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("second Compact() = %v", err)
	}
	if again, err := listSegments(dir); err != nil || !slices.Equal(again, ids) {
		t.Errorf("segments after a second Compact = %v, %v; want %v", again, err, ids)
	}

	// Deleted keys stay deleted: their tombstones went with the records
	// they shadowed.
	s = reopen(t, s, opts...)
	m.check(t, s)
	put(t, s, "input/0000", objectFor(5))
	m["input/0000"] = objectFor(5)
	s = reopen(t, s, opts...)
	m.check(t, s)
}

// TestCompactDuringWrites runs Compact while writers overwrite and delete
// keys: every write made during Compact must win over the copies.
func TestCompactDuringWrites(t *testing.T) {
	ctx := context.Background()
	opts := []Option{WithSegmentSize(16 << 10)}
	s := openStore(t, t.TempDir(), opts...)
	base := fill(t, s, 200)
	const writers, perWriter = 4, 300
	models := make([]model, writers)
	var wg sync.WaitGroup
	for w := range writers {
		models[w] = model{}
		for k, obj := range base {
			if n, _ := strconv.Atoi(strings.TrimPrefix(k, "input/")); n%writers == w {
				models[w][k] = obj
			}
		}
		wg.Go(func() {
			for i := range perWriter {
				n := (i*writers + w) % 200
				k := fmt.Sprintf("input/%04d", n)
				if i%4 == 3 {
					if err := s.Delete(ctx, k); err != nil {
						t.Errorf("Delete(%s) = %v", k, err)
					}
					delete(models[w], k)
					continue
				}
				if err := s.Put(ctx, k, objectFor(n+i)); err != nil {
					t.Errorf("Put(%s) = %v", k, err)
				}
				models[w][k] = objectFor(n + i)
			}
		})
	}
	writing := make(chan struct{})
	go func() {
		wg.Wait()
		close(writing)
	}()
	for done := false; !done; {
		select {
		case <-writing:
			done = true
		default:
		}
		if err := s.Compact(ctx); err != nil {
			t.Errorf("Compact() = %v", err)
			<-writing
			break
		}
	}
	all := model{}
	for _, m := range models {
		maps.Copy(all, m)
	}
	all.check(t, s)
	s = reopen(t, s, opts...)
	all.check(t, s)
}

func TestFsyncOption(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithFsync(), WithSegmentSize(4 << 10)}
	s := openStore(t, dir, opts...)
	m := fill(t, s, 30)
	s = reopen(t, s, opts...)
	m.check(t, s)
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		md   map[string]string
	}{
		{name: "none"},
		{name: "content type only", ct: "image/jpeg"},
		{name: "metadata", ct: "x", md: map[string]string{"a": "1", "": "", "long": strings.Repeat("v", 300)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeMeta(tt.ct, tt.md)
			if err != nil {
				t.Fatal(err)
			}
			ct, md, err := decodeMeta(b)
			if err != nil || ct != tt.ct || !maps.Equal(md, tt.md) {
				t.Errorf("decodeMeta(encodeMeta(%q, %v)) = %q, %v, %v; want the same back", tt.ct, tt.md, ct, md, err)
			}
			for i := range len(b) {
				if _, _, err := decodeMeta(b[:i]); err == nil && i < len(b) {
					t.Errorf("decodeMeta(first %d of %d bytes) = nil error, want one", i, len(b))
				}
			}
		})
	}
}

// FuzzOpen opens a store whose only segment holds arbitrary bytes: Open
// must fail or succeed, never panic, and when it succeeds the store must
// work.
func FuzzOpen(f *testing.F) {
	good := encodeRecord(opPut, "input/a", []byte{1, 'x', 0}, []byte("body"))
	f.Add(good)
	f.Add(append(slices.Clone(good), good[:10]...))
	f.Add(append(slices.Clone(good), encodeRecord(opDelete, "input/a", nil, nil)...))
	f.Add([]byte("eqs\x01garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(segPath(dir, 1), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir)
		if err != nil {
			return
		}
		defer s.Close()
		keys, err := s.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, err := s.Get(context.Background(), k); err != nil {
				t.Fatalf("Get(%s) listed after Open = %v", k, err)
			}
		}
		put(t, s, "input/new", objectFor(1))
		wantObject(t, s, "input/new", objectFor(1))
	})
}

func TestOldLayoutWarning(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, oldTempDir), 0o755); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	openStore(t, dir, WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if !strings.Contains(logged.String(), "old one-file-per-object layout") {
		t.Errorf("Open(old layout) logged %q, want a warning about the old layout", logged.String())
	}
}
