package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// receiveJournal keeps, in a file of the data folder, how many times each
// unfinished request has been delivered to a worker, so that the dead-letter
// limit (MaxReceives) holds across restarts of the embedded stack.
//
// The request queue lives in memory, and Recover sends every unfinished
// request again at start-up. With fresh receive counts, a request that kills
// the process each time it is handled (an image that exhausts its memory)
// came back after every restart and was never given up: with the classic
// policy each restart re-queued it, launched workers and was killed again.
// With the journal it comes back with its count, and after MaxReceives
// deliveries goes to the dead-letter queue, whose consumer answers it failed.
//
// Each delivery appends a line "<request ID> <receive count>" (one write per
// batch, no fsync: a killed process's writes are in the page cache; a power
// loss may cost the last counts). A deleted message's request is finished
// and forgotten; when the file has grown well past what the unfinished
// requests need, it is rewritten with their counts alone, and so it is at
// every start.
type receiveJournal struct {
	path string

	mu      sync.Mutex
	f       *os.File
	size    int64
	counts  map[elastiq.RequestID]int    // unfinished requests delivered at least once
	handles map[string]elastiq.RequestID // the latest delivery's receipt handle
	latest  map[elastiq.RequestID]string // and back
	buf     []byte
}

// journalSlack: the file is rewritten once it is this much larger than a
// rewrite would make it, and at least minJournalRewrite.
const (
	journalSlack      = 8
	minJournalRewrite = 1 << 20
)

// openReceiveJournal reads the journal at path, if any.
func openReceiveJournal(path string) (*receiveJournal, error) {
	j := &receiveJournal{
		path:    path,
		counts:  make(map[elastiq.RequestID]int),
		handles: make(map[string]elastiq.RequestID),
		latest:  make(map[elastiq.RequestID]string),
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("receive journal: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// A torn last line (a crash mid-write) or junk is skipped.
		id, n, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		count, err := strconv.Atoi(string(n))
		rid, idErr := elastiq.ParseRequestID(string(id))
		if !ok || err != nil || idErr != nil {
			continue
		}
		j.counts[rid] = max(j.counts[rid], count)
	}
	// The file is written again whole by Keep at start (or by the first
	// record), which also drops a torn last line.
	return j, nil
}

// Count is how many times request id has been delivered, as far as the
// journal knows.
func (j *receiveJournal) Count(id elastiq.RequestID) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.counts[id]
}

// Keep forgets every request but ids (the unfinished ones Recover sent
// again) and rewrites the file.
func (j *receiveJournal) Keep(ids []elastiq.RequestID) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	kept := make(map[elastiq.RequestID]int, len(ids))
	for _, id := range ids {
		if n, ok := j.counts[id]; ok {
			kept[id] = n
		}
	}
	j.counts = kept
	return j.rewriteLocked()
}

// record journals a batch of deliveries.
func (j *receiveJournal) record(msgs []elastiq.Message) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = j.buf[:0]
	for _, m := range msgs {
		req, err := elastiq.DecodeRequest(m.Body)
		if err != nil {
			continue // the worker deletes it as undecodable
		}
		if old, ok := j.latest[req.ID]; ok {
			delete(j.handles, old)
		}
		j.counts[req.ID] = m.ReceiveCount
		j.handles[m.ReceiptHandle], j.latest[req.ID] = req.ID, m.ReceiptHandle
		j.buf = fmt.Appendf(j.buf, "%s %d\n", req.ID, m.ReceiveCount)
	}
	if len(j.buf) == 0 {
		return nil
	}
	if j.f == nil || (j.size > minJournalRewrite && j.size > journalSlack*j.neededLocked()) {
		return j.rewriteLocked() // writes the batch's counts too
	}
	n, err := j.f.Write(j.buf)
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("receive journal: %w", err)
	}
	return nil
}

// finish forgets the request of a deleted message.
func (j *receiveJournal) finish(handle string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if id, ok := j.handles[handle]; ok {
		delete(j.handles, handle)
		delete(j.latest, id)
		delete(j.counts, id)
	}
}

// neededLocked estimates the size of a rewritten file.
func (j *receiveJournal) neededLocked() int64 {
	return int64(len(j.counts)) * 40
}

// rewriteLocked replaces the file with the counts of the unfinished
// requests, atomically, and reopens it for appending.
func (j *receiveJournal) rewriteLocked() error {
	var b []byte
	for id, n := range j.counts {
		b = fmt.Appendf(b, "%s %d\n", id, n)
	}
	tmp := j.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("receive journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("receive journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		j.f = nil
		return fmt.Errorf("receive journal: %w", err)
	}
	j.f, j.size = f, int64(len(b))
	return nil
}

// Close closes the file.
func (j *receiveJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// journaledQueue is the request queue as the workers see it: every
// delivery is journaled, every delete finishes its request.
type journaledQueue struct {
	elastiq.Queue
	journal *receiveJournal
	onError func(error)
}

func (q journaledQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	msgs, err := q.Queue.Receive(ctx, max, wait)
	if len(msgs) > 0 {
		if jerr := q.journal.record(msgs); jerr != nil {
			q.onError(jerr) // the messages are still handled
		}
	}
	return msgs, err
}

func (q journaledQueue) Delete(ctx context.Context, receiptHandle string) error {
	err := q.Queue.Delete(ctx, receiptHandle)
	if err == nil {
		q.journal.finish(receiptHandle)
	}
	return err
}

// journalPath is the journal's file in the data folder.
func journalPath(dataDir string) string { return filepath.Join(dataDir, "receives.log") }
