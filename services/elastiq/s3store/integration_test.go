package s3store_test

// Integration tests against an S3-compatible server (moto) on loopback,
// started by scripts/test-servers.sh; see internal/awstest.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
)

// countingAPI passes every call to the real client and counts the list
// pages. It is a thin wrapper, not a double: S3 (moto) answers.
type countingAPI struct {
	s3store.API
	listCalls int
}

func (c *countingAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.listCalls++
	return c.API.ListObjectsV2(ctx, in, optFns...)
}

// newBucket creates a bucket for this test and empties and deletes it when
// the test ends. It returns the bucket and a client for it.
func newBucket(t *testing.T) (string, *s3.Client) {
	t.Helper()
	cfg := awstest.Config(t)
	bucket := awstest.Name(t)
	if err := s3store.CreateBucket(t.Context(), cfg, bucket, s3store.Options{UsePathStyle: true}); err != nil {
		t.Fatalf("CreateBucket(%s): %v", bucket, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				t.Errorf("cleanup: list %s: %v", bucket, err)
				return
			}
			for _, o := range page.Contents {
				if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
					t.Errorf("cleanup: delete %s: %v", aws.ToString(o.Key), err)
				}
			}
		}
		if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Errorf("cleanup: delete bucket %s: %v", bucket, err)
		}
	})
	return bucket, client
}

// newStore opens the store of a new bucket.
func newStore(t *testing.T) *s3store.Store {
	t.Helper()
	bucket, _ := newBucket(t)
	s, err := s3store.Open(t.Context(), awstest.Config(t), bucket, s3store.Options{UsePathStyle: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", bucket, err)
	}
	return s
}

func put(t *testing.T, s *s3store.Store, key string, obj elastiq.Object) {
	t.Helper()
	if err := s.Put(t.Context(), key, obj); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func TestInputRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	now := time.Date(2026, 4, 1, 12, 30, 45, 123456789, time.UTC)
	req := elastiq.Request{ID: elastiq.NewRequestID(now), FileName: "Café ✓ test_00.jpg", ContentType: "image/jpeg", SubmittedAt: now}
	req.InputKey = elastiq.InputKey(req.ID)
	body := []byte("\xff\xd8\xff\xe0 not really a jpeg \x00\x01")
	put(t, s, req.InputKey, elastiq.Object{Body: body, ContentType: req.ContentType, Metadata: elastiq.InputMetadata(req)})

	got, err := s.Get(t.Context(), req.InputKey)
	if err != nil {
		t.Fatalf("Get(%s): %v", req.InputKey, err)
	}
	if !bytes.Equal(got.Body, body) || got.ContentType != "image/jpeg" {
		t.Errorf("Get(%s) = body %q type %q, want %q and %q", req.InputKey, got.Body, got.ContentType, body, "image/jpeg")
	}
	back, err := elastiq.RequestFromInput(req.InputKey, got)
	if err != nil {
		t.Fatalf("RequestFromInput: %v", err)
	}
	if !reflect.DeepEqual(back, req) {
		t.Errorf("RequestFromInput(Get(...)) = %+v, want %+v", back, req)
	}

	head, err := s.Head(t.Context(), req.InputKey)
	if err != nil {
		t.Fatalf("Head(%s): %v", req.InputKey, err)
	}
	if head.Body != nil || head.ContentType != got.ContentType || !maps.Equal(head.Metadata, got.Metadata) {
		t.Errorf("Head(%s) = %+v, want no body and Get's type and metadata %+v", req.InputKey, head, got.Metadata)
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tests := []struct {
		name string
		meta map[string]string
		want map[string]string
	}{
		{name: "mixed-case keys come back lower-case", meta: map[string]string{"File-Name": "a.jpg", "X.Trace-ID": "7"},
			want: map[string]string{"file-name": "a.jpg", "x.trace-id": "7"}},
		{name: "non-ASCII", meta: map[string]string{"file-name": "日本語のファイル名はとても長いのでいくつかの単語に分けられます.png"}},
		{name: "surrounding spaces", meta: map[string]string{"file-name": "  spaced out  "}},
		{name: "looks encoded", meta: map[string]string{"file-name": "=?utf-8?b?aGk=?="}},
		{name: "control characters", meta: map[string]string{"file-name": "tab\there\nnewline"}},
		{name: "empty value", meta: map[string]string{"file-name": ""}},
		{name: "none", meta: nil, want: map[string]string{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.meta
			}
			key := fmt.Sprintf("input/meta-%d", i)
			put(t, s, key, elastiq.Object{Body: []byte("x"), ContentType: "text/plain", Metadata: tt.meta})
			for _, op := range []struct {
				name string
				call func(context.Context, string) (elastiq.Object, error)
			}{{"Get", s.Get}, {"Head", s.Head}} {
				got, err := op.call(t.Context(), key)
				if err != nil {
					t.Fatalf("%s(%s): %v", op.name, key, err)
				}
				if !maps.Equal(got.Metadata, want) {
					t.Errorf("%s(%s).Metadata = %q, want %q", op.name, key, got.Metadata, want)
				}
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if _, err := s.Get(t.Context(), "output/missing"); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Head(t.Context(), "output/missing"); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("Head(missing) = %v, want ErrNotFound", err)
	}
}

func TestOpenMissingBucket(t *testing.T) {
	t.Parallel()
	_, err := s3store.Open(t.Context(), awstest.Config(t), awstest.Name(t), s3store.Options{UsePathStyle: true})
	if !errors.Is(err, elastiq.ErrNotFound) {
		t.Fatalf("Open(missing bucket) = %v, want ErrNotFound", err)
	}
}

func TestListPrefixAndPages(t *testing.T) {
	t.Parallel()
	bucket, client := newBucket(t)
	api := &countingAPI{API: client}
	const pageSize = 7
	s, err := s3store.New(api, bucket, s3store.Options{PageSize: pageSize})
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	var inputs, outputs []string
	for i := range 25 {
		inputs = append(inputs, fmt.Sprintf("input/%03d", i))
	}
	for i := range 5 {
		outputs = append(outputs, fmt.Sprintf("output/%03d", i))
	}
	all := slices.Concat(inputs, outputs)
	for _, i := range rand.Perm(len(all)) {
		put(t, s, all[i], elastiq.Object{Body: []byte(all[i])})
	}

	tests := []struct {
		prefix    string
		want      []string
		wantPages int
	}{
		{prefix: elastiq.InputPrefix, want: inputs, wantPages: 4},
		{prefix: elastiq.OutputPrefix, want: outputs, wantPages: 1},
		{prefix: "", want: all, wantPages: 5},
		{prefix: "input/02", want: inputs[20:], wantPages: 1},
		{prefix: "nothing/", want: nil, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			api.listCalls = 0
			got, err := s.List(t.Context(), tt.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tt.prefix, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
			if api.listCalls != tt.wantPages {
				t.Errorf("List(%q) read %d pages of %d, want %d", tt.prefix, api.listCalls, pageSize, tt.wantPages)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	put(t, s, "input/gone", elastiq.Object{Body: []byte("x")})
	for i := range 2 { // the second time the key is already missing
		if err := s.Delete(t.Context(), "input/gone"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := s.Get(t.Context(), "input/gone"); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrNotFound", err)
	}
	keys, err := s.List(t.Context(), "input/")
	if err != nil || len(keys) != 0 {
		t.Errorf("List(input/) after delete = %q, %v; want none", keys, err)
	}
}

func TestOverwrite(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	first := elastiq.Object{Body: []byte(`{"status":"done"}`), ContentType: "application/json", Metadata: map[string]string{"worker": "a"}}
	// A duplicate delivery writes the same output again: one object.
	put(t, s, "output/x", first)
	put(t, s, "output/x", first)
	keys, err := s.List(t.Context(), "output/")
	if err != nil || !slices.Equal(keys, []string{"output/x"}) {
		t.Fatalf("List(output/) = %q, %v; want [output/x]", keys, err)
	}
	// A different write replaces body, type and metadata alike.
	second := elastiq.Object{Body: []byte("plain"), ContentType: "text/plain", Metadata: map[string]string{"other": "b"}}
	put(t, s, "output/x", second)
	got, err := s.Get(t.Context(), "output/x")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got.Body, second.Body) || got.ContentType != second.ContentType || !maps.Equal(got.Metadata, second.Metadata) {
		t.Errorf("Get after overwrite = %+v, want %+v", got, second)
	}
}

func TestEmptyObject(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	put(t, s, "output/empty", elastiq.Object{})
	got, err := s.Get(t.Context(), "output/empty")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(got.Body) != 0 || len(got.Metadata) != 0 {
		t.Errorf("Get(empty) = %+v, want no body and no metadata", got)
	}
	// Without a content type S3 answers its default.
	t.Logf("content type of an object put without one: %q", got.ContentType)
}
