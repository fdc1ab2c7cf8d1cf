package s3store_test

// Unit tests with a test double of the S3 client: error mapping, options
// and call timeouts. What S3 itself does is tested in integration_test.go
// against moto.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
)

// fakeAPI is a test double of the S3 client: every call records how long its
// context had left and returns err if set, else an empty answer.
type fakeAPI struct {
	err       error
	remaining time.Duration
}

var _ s3store.API = (*fakeAPI)(nil)

func (f *fakeAPI) called(ctx context.Context) error {
	f.remaining = 0
	if d, ok := ctx.Deadline(); ok {
		f.remaining = time.Until(d)
	}
	return f.err
}

func (f *fakeAPI) PutObject(ctx context.Context, _ *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return &s3.PutObjectOutput{}, f.called(ctx)
}

func (f *fakeAPI) GetObject(ctx context.Context, _ *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := f.called(ctx); err != nil {
		return nil, err
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader("body"))}, nil
}

func (f *fakeAPI) HeadObject(ctx context.Context, _ *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return &s3.HeadObjectOutput{}, f.called(ctx)
}

func (f *fakeAPI) ListObjectsV2(ctx context.Context, _ *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return &s3.ListObjectsV2Output{}, f.called(ctx)
}

func (f *fakeAPI) DeleteObject(ctx context.Context, _ *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return &s3.DeleteObjectOutput{}, f.called(ctx)
}

var ops = []struct {
	name string
	call func(ctx context.Context, s *s3store.Store) error
}{
	{name: "Put", call: func(ctx context.Context, s *s3store.Store) error { return s.Put(ctx, "k", elastiq.Object{}) }},
	{name: "Get", call: func(ctx context.Context, s *s3store.Store) error { _, err := s.Get(ctx, "k"); return err }},
	{name: "Head", call: func(ctx context.Context, s *s3store.Store) error { _, err := s.Head(ctx, "k"); return err }},
	{name: "List", call: func(ctx context.Context, s *s3store.Store) error { _, err := s.List(ctx, "k"); return err }},
	{name: "Delete", call: func(ctx context.Context, s *s3store.Store) error { return s.Delete(ctx, "k") }},
}

// httpError is the error the SDK returns for a response without an error
// body (as HEAD responses are), with the given status.
func httpError(status int) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "HeadObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: errors.New("http error")},
	}}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantNotFound bool
	}{
		{name: "NoSuchKey", err: &types.NoSuchKey{}, wantNotFound: true},
		{name: "NotFound", err: &types.NotFound{}, wantNotFound: true},
		{name: "NoSuchBucket", err: &types.NoSuchBucket{}, wantNotFound: true},
		{name: "generic NoSuchKey code", err: &smithy.GenericAPIError{Code: "NoSuchKey"}, wantNotFound: true},
		{name: "bare 404", err: httpError(http.StatusNotFound), wantNotFound: true},
		{name: "bare 403", err: httpError(http.StatusForbidden)},
		{name: "AccessDenied", err: &smithy.GenericAPIError{Code: "AccessDenied"}},
		{name: "timeout", err: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		for _, op := range ops {
			t.Run(tt.name+"/"+op.name, func(t *testing.T) {
				s, err := s3store.New(&fakeAPI{err: tt.err}, "bucket", s3store.Options{})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				err = op.call(t.Context(), s)
				if !errors.Is(err, tt.err) {
					t.Errorf("%s() = %v, want the SDK error %v in the chain", op.name, err, tt.err)
				}
				if got := errors.Is(err, elastiq.ErrNotFound); got != tt.wantNotFound {
					t.Errorf("errors.Is(%s() = %v, ErrNotFound) = %t, want %t", op.name, err, got, tt.wantNotFound)
				}
			})
		}
	}
}

func TestCallTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{name: "default", want: s3store.DefaultTimeout},
		{name: "set", timeout: time.Second, want: time.Second},
	}
	for _, tt := range tests {
		for _, op := range ops {
			t.Run(tt.name+"/"+op.name, func(t *testing.T) {
				f := &fakeAPI{}
				s, err := s3store.New(f, "bucket", s3store.Options{Timeout: tt.timeout})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if err := op.call(t.Context(), s); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				if f.remaining <= 0 || f.remaining > tt.want {
					t.Errorf("%s call had %v left, want in (0, %v]", op.name, f.remaining, tt.want)
				}
			})
		}
	}
}

func TestNewPageSize(t *testing.T) {
	for _, tt := range []struct {
		size    int
		wantErr bool
	}{{size: 0}, {size: 1}, {size: 1000}, {size: 1001, wantErr: true}, {size: -1, wantErr: true}} {
		_, err := s3store.New(&fakeAPI{}, "bucket", s3store.Options{PageSize: tt.size})
		if (err != nil) != tt.wantErr {
			t.Errorf("New(PageSize %d) error = %v, want error %t", tt.size, err, tt.wantErr)
		}
	}
}
