package elastiqtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/elastiq/elastiq/services/elastiq"
)

var _ elastiq.ObjectStore = (*Store)(nil)

// Store is a test double of elastiq.ObjectStore: a map from key to object.
// It copies bodies in and out, so neither the caller nor the code under test
// can change a stored object behind the other's back. It counts puts per key
// and gets per key, and can be told to fail Put, or Get and Head. It is safe for concurrent
// use; the zero value is an empty store.
type Store struct {
	mu      sync.Mutex
	objects map[string]elastiq.Object
	puts    map[string]int
	gets    map[string]int
	putErr  error
	getErr  error
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{} }

// Put stores obj under key, or returns the error set by SetPutErr.
func (s *Store) Put(ctx context.Context, key string, obj elastiq.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putErr != nil {
		return s.putErr
	}
	if s.objects == nil {
		s.objects = make(map[string]elastiq.Object)
		s.puts = make(map[string]int)
	}
	obj.Body = slices.Clone(obj.Body)
	s.objects[key] = obj
	s.puts[key]++
	return nil
}

// Get returns the object under key, a wrapped elastiq.ErrNotFound if there
// is none, or the error set by SetGetErr.
func (s *Store) Get(ctx context.Context, key string) (elastiq.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gets == nil {
		s.gets = make(map[string]int)
	}
	s.gets[key]++
	if s.getErr != nil {
		return elastiq.Object{}, s.getErr
	}
	obj, ok := s.objects[key]
	if !ok {
		return elastiq.Object{}, fmt.Errorf("get %s: %w", key, elastiq.ErrNotFound)
	}
	obj.Body = slices.Clone(obj.Body)
	return obj, nil
}

// Head is Get without the body; SetGetErr fails it too.
func (s *Store) Head(ctx context.Context, key string) (elastiq.Object, error) {
	obj, err := s.Get(ctx, key)
	obj.Body = nil
	return obj, err
}

// List returns the keys under prefix in lexical order.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete removes the object under key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, key)
	return nil
}

// SetPutErr makes every later Put return err, until it is set to nil.
func (s *Store) SetPutErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putErr = err
}

// SetGetErr makes every later Get and Head return err, until it is set to
// nil.
func (s *Store) SetGetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.getErr = err
}

// PutCount returns how many Put calls stored an object under key.
func (s *Store) PutCount(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts[key]
}

// GetCount returns how many Get calls asked for key, found or not.
func (s *Store) GetCount(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[key]
}

// Puts returns how many Put calls stored an object, under any key.
func (s *Store) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.puts {
		n += c
	}
	return n
}
