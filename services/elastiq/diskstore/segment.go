package diskstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	segPrefix = "seg-"
	segSuffix = ".log"
	// scanBuffer is the read-ahead of the start-up scan.
	scanBuffer = 1 << 20
)

// segment is one log file. Its read handle serves Get with ReadAt; only
// the active segment also has a writer (Store.w).
type segment struct {
	id   uint32
	path string
	// size is how many bytes of records the file holds: fixed once the
	// segment is sealed, growing under Store.wmu while it is active.
	size atomic.Int64
	// live is how many of those bytes are records the index points to;
	// guarded by Store.mu.
	live int64

	// mu guards r against being closed (by Close or Compact) during a
	// read; readers hold it shared for the length of their ReadAt.
	mu sync.RWMutex
	r  *os.File // nil once closed
}

func segName(id uint32) string { return fmt.Sprintf("%s%08d%s", segPrefix, id, segSuffix) }

// parseSegName returns the id of a segment file name.
func parseSegName(name string) (uint32, bool) {
	digits, ok := strings.CutPrefix(name, segPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, segSuffix); !ok || len(digits) != 8 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || id == 0 {
		return 0, false
	}
	return uint32(id), true
}

// listSegments returns the ids of the segment files in dir, ascending.
func listSegments(dir string) ([]uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, e := range entries {
		if id, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// read reads len(p) bytes at off. It returns errSegmentGone when Compact
// or Close has closed the segment since the caller looked it up.
func (g *segment) read(p []byte, off int64) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.r == nil {
		return errSegmentGone
	}
	_, err := g.r.ReadAt(p, off)
	return err
}

// sync flushes the segment to stable storage; a closed segment was synced
// before it was closed.
func (g *segment) sync() error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.r == nil {
		return nil
	}
	return g.r.Sync()
}

// close closes the read handle, waiting for reads in progress.
func (g *segment) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		return nil
	}
	err := g.r.Close()
	g.r = nil
	return err
}

var errSegmentGone = errors.New("segment closed")

// scanned is one valid record met by scan.
type scanned struct {
	off  int64
	h    header
	key  string
	meta []byte // valid only during the callback
}

// damage is a record scan could not read. The caller decides whether it
// is a torn tail or corruption.
type damage struct {
	off int64
	err error
}

func (d *damage) Error() string { return fmt.Sprintf("offset %d: %v", d.off, d.err) }

// scan reads the records of r, a file of size bytes, in order and calls fn
// for each valid one. It stops at the first damaged record and returns a
// *damage for it, or fn's error.
func scan(r io.Reader, size int64, fn func(scanned) error) error {
	br := bufio.NewReaderSize(r, scanBuffer)
	var rec []byte
	for off := int64(0); off < size; {
		h, n, err := readRecord(br, size-off, &rec)
		if err != nil {
			return &damage{off: off, err: err}
		}
		if err := fn(scanned{off: off, h: h, key: recordKey(h, rec), meta: recordMeta(h, rec)}); err != nil {
			return fmt.Errorf("offset %d: %w", off, err)
		}
		off += n
	}
	return nil
}

// readRecord reads one whole record from br, of which left bytes remain
// in the file, into *buf (grown as needed) and checks it.
func readRecord(br *bufio.Reader, left int64, buf *[]byte) (header, int64, error) {
	if left < headerLen {
		return header{}, 0, fmt.Errorf("%d bytes left, less than a record header", left)
	}
	hb, err := br.Peek(headerLen)
	if err != nil {
		return header{}, 0, err
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return header{}, 0, err
	}
	n := h.size()
	if n > left {
		return header{}, 0, fmt.Errorf("record of %d bytes, %d left in the file", n, left)
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	rec := (*buf)[:n]
	if _, err := io.ReadFull(br, rec); err != nil {
		return header{}, 0, err
	}
	if err := checkRecord(h, rec); err != nil {
		return header{}, 0, err
	}
	*buf = rec
	return h, n, nil
}

// validRecordAfter reports whether a valid record starts anywhere in tail
// after its first byte: if one does, the damage at the start of tail is
// not a torn last write but corruption with data behind it.
func validRecordAfter(tail []byte) bool {
	for i := 1; i < len(tail); {
		j := bytes.Index(tail[i:], magic[:])
		if j < 0 {
			return false
		}
		i += j
		if h, err := decodeHeader(tail[i:]); err == nil && h.size() <= int64(len(tail)-i) {
			if checkRecord(h, tail[i:i+int(h.size())]) == nil {
				return true
			}
		}
		i++
	}
	return false
}

// isTornTail reports whether the damage at off in the file f of size
// bytes is a torn tail: nothing valid follows it.
func isTornTail(f *os.File, off, size int64) (bool, error) {
	tail := make([]byte, size-off)
	if _, err := f.ReadAt(tail, off); err != nil {
		return false, err
	}
	return !validRecordAfter(tail), nil
}

// syncDir flushes dir's entries (a created or removed file) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// createSegment creates segment id in dir and returns it with its writer.
func createSegment(dir string, id uint32) (*segment, *os.File, error) {
	path := filepath.Join(dir, segName(id))
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, nil, err
	}
	r, err := os.Open(path)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return &segment{id: id, path: path, r: r}, w, nil
}
