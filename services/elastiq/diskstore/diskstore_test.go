package diskstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

func put(t *testing.T, s *Store, key string, obj elastiq.Object) {
	t.Helper()
	if err := s.Put(context.Background(), key, obj); err != nil {
		t.Fatalf("Put(%s) = %v", key, err)
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
		t.Fatalf("Get(%s) = %q %q %v, want %q %q %v", key, got.Body, got.ContentType, got.Metadata, want.Body, want.ContentType, want.Metadata)
	}
	head, err := s.Head(ctx, key)
	if err != nil {
		t.Fatalf("Head(%s) = %v", key, err)
	}
	if head.Body != nil || head.ContentType != want.ContentType || !maps.Equal(head.Metadata, want.Metadata) {
		t.Fatalf("Head(%s) = %q %q %v, want nil body, %q %v", key, head.Body, head.ContentType, head.Metadata, want.ContentType, want.Metadata)
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
				Metadata:    map[string]string{elastiq.MetaFileName: "test_00.jpg", "odd": "a\nb \"c\""},
			},
		},
		{name: "empty body, no metadata", key: "output/x", obj: elastiq.Object{Body: []byte{}}},
		{name: "dots and dashes", key: "a-b/c.d_e/..f", obj: elastiq.Object{Body: []byte("z"), ContentType: "text/plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(t, s, tt.key, tt.obj)
			wantObject(t, s, tt.key, tt.obj)
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	put(t, s, "input/a", elastiq.Object{Body: []byte("a")})
	for _, key := range []string{"input/b", "output/a", "input", "input/a/b"} {
		t.Run(key, func(t *testing.T) {
			if _, err := s.Get(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
				t.Errorf("Get(%s) = %v, want ErrNotFound", key, err)
			}
			if _, err := s.Head(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
				t.Errorf("Head(%s) = %v, want ErrNotFound", key, err)
			}
		})
	}
}

func TestOverwriteIsOneObject(t *testing.T) {
	s := openStore(t, t.TempDir())
	put(t, s, "output/r", elastiq.Object{Body: []byte("first"), ContentType: "a", Metadata: map[string]string{"k": "1"}})
	second := elastiq.Object{Body: []byte("second"), ContentType: "b"}
	put(t, s, "output/r", second)
	put(t, s, "output/r", second)
	wantObject(t, s, "output/r", second)
	wantList(t, s, "", []string{"output/r"})
}

func TestReopenPersists(t *testing.T) {
	dir := t.TempDir()
	obj := elastiq.Object{Body: []byte("kept"), ContentType: "image/png", Metadata: map[string]string{"file-name": "x.png"}}
	put(t, openStore(t, dir), "input/kept", obj)

	s := openStore(t, dir)
	wantObject(t, s, "input/kept", obj)
	wantList(t, s, "input/", []string{"input/kept"})
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
		{name: "temp dir", key: "~tmp/x"},
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
		})
	}
	entries, err := os.ReadDir(filepath.Dir(s.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("store's parent directory holds %d entries, want only the store", len(entries))
	}
	wantList(t, s, "", nil)
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for _, k := range []string{"output/b", "input/b", "input/a", "a.b", "a/b", "input/ab/c", "inputs"} {
		put(t, s, k, elastiq.Object{Body: []byte(k)})
	}
	// Temporary files are not objects, wherever they are.
	for _, p := range []string{filepath.Join(tempDir, "put-1"), filepath.Join("input", tempPrefix+"2")} {
		if err := os.WriteFile(filepath.Join(s.Dir(), p), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{prefix: "", want: []string{"a.b", "a/b", "input/a", "input/ab/c", "input/b", "inputs", "output/b"}},
		{prefix: "input/", want: []string{"input/a", "input/ab/c", "input/b"}},
		{prefix: "input", want: []string{"input/a", "input/ab/c", "input/b", "inputs"}},
		{prefix: "input/a", want: []string{"input/a", "input/ab/c"}},
		{prefix: "input/ab/", want: []string{"input/ab/c"}},
		{prefix: "output/", want: []string{"output/b"}},
		{prefix: "missing/", want: nil},
		{prefix: "input/a/", want: nil}, // input/a is a file
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

func TestOpenRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	put(t, s, "input/a", elastiq.Object{Body: []byte("a")})
	write := func(p string) string {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crashedSpares := write(filepath.Join(tempDir, spareDir+"crashed", tempPrefix+"1"))
	stray := write(filepath.Join(tempDir, "stray"))
	oldPut := write(filepath.Join("input", tempPrefix+"old"))
	freshPut := write(filepath.Join("input", tempPrefix+"fresh"))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(oldPut, old, old); err != nil {
		t.Fatal(err)
	}

	other := openStore(t, dir) // while s is still open
	tests := []struct {
		path string
		kept bool
	}{
		{path: crashedSpares, kept: false},
		{path: stray, kept: false},
		{path: oldPut, kept: false},
		{path: freshPut, kept: true}, // a Put may be writing it
		{path: s.spareDir, kept: true},
	}
	for _, tt := range tests {
		_, err := os.Stat(tt.path)
		if kept := err == nil; kept != tt.kept {
			t.Errorf("after Open, %s: Stat = %v, want kept %v", tt.path, err, tt.kept)
		}
	}
	// Both stores work, each with its own spares.
	put(t, s, "input/b", elastiq.Object{Body: []byte("b")})
	put(t, other, "input/c", elastiq.Object{Body: []byte("c")})
	wantList(t, other, "input/", []string{"input/a", "input/b", "input/c"})
}

func TestSpareFiles(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		spares int
	}{
		{name: "default", spares: DefaultSpareFiles},
		{name: "three", opts: []Option{WithSpareFiles(3)}, spares: 3},
		{name: "off", opts: []Option{WithSpareFiles(0)}, spares: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, tt.opts...)
			if tt.spares > 0 {
				waitForFiles(t, s.spareDir, tt.spares+2) // one more in hand, and the lock
			}
			for i := range tt.spares + 2 { // more than the spares
				put(t, s, fmt.Sprintf("output/%d", i), objectFor(i))
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			put(t, s, fmt.Sprintf("output/%d", tt.spares+2), objectFor(1))
			for i := range tt.spares + 2 {
				wantObject(t, s, fmt.Sprintf("output/%d", i), objectFor(i))
			}
			waitForFiles(t, filepath.Join(dir, tempDir), 0)
			waitForFiles(t, filepath.Join(dir, "output"), tt.spares+3)
		})
	}
}

// waitForFiles polls until dir holds n entries.
func waitForFiles(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d entries, want %d", dir, len(entries), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCorruptObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	put(t, s, "output/c", elastiq.Object{Body: []byte("complete body")})
	p := filepath.Join(dir, "output", "c")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{name: "truncated", data: data[:len(data)-3]},
		{name: "extra bytes", data: append(slices.Clone(data), "xx"...)},
		{name: "not an object", data: []byte("plain file")},
		{name: "empty", data: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(p, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "output/c"); err == nil || errors.Is(err, elastiq.ErrNotFound) {
				t.Errorf("Get(corrupt) = %v, want a corruption error", err)
			}
		})
	}
}

// objectFor makes an object whose body, content type and metadata all say
// n, so a reader can tell a torn object from a whole one.
func objectFor(n int) elastiq.Object {
	s := strconv.Itoa(n)
	return elastiq.Object{
		Body:        bytes.Repeat([]byte(s+","), 1000+n*37),
		ContentType: "text/" + s,
		Metadata:    map[string]string{"n": s},
	}
}

// TestConcurrentPutsOfOneKey has writers race on one key while readers
// check that every read is one whole Put, never a mix.
func TestConcurrentPutsOfOneKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	const key = "output/race"
	put(t, s, key, objectFor(0))

	var wg sync.WaitGroup
	for w := 1; w <= 8; w++ {
		wg.Go(func() {
			for i := range 20 {
				if err := s.Put(ctx, key, objectFor(w*100+i)); err != nil {
					t.Errorf("Put = %v", err)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 100 {
				got, err := s.Get(ctx, key)
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
			}
		})
	}
	wg.Wait()
	wantList(t, s, "", []string{key})
	entries, err := os.ReadDir(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("output/ holds %d files after the Puts, want 1 (no temp files left)", len(entries))
	}
}

func TestFsyncOption(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, WithFsync())
	obj := elastiq.Object{Body: []byte("synced"), Metadata: map[string]string{"a": "b"}}
	put(t, s, "deep/new/dirs/obj", obj)
	wantObject(t, openStore(t, dir), "deep/new/dirs/obj", obj)
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
}
