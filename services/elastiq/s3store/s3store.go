// Package s3store is an elastiq.ObjectStore on one Amazon S3 bucket (or a
// bucket of an S3-compatible server such as moto), through aws-sdk-go-v2.
// Keys are the elastiq ones (input/<id>, output/<id>) used as object keys.
//
// The store uses five S3 calls, declared as the small interface API so that
// tests can put a double in place of the SDK client. SDK types stay inside
// this package: callers see elastiq.Object and errors that wrap
// elastiq.ErrNotFound.
//
// User metadata travels as x-amz-meta-* headers, so:
//   - keys are case-insensitive: S3 stores and returns them in lower case,
//     and Put lower-cases them itself (elastiq's keys already are); they are
//     letters, digits, '-' and '.' (no '_': see validMetaKey);
//   - values must be mail-safe ASCII: Put encodes any other value (non-ASCII,
//     control characters, leading or trailing spaces) as an RFC 2047
//     encoded-word, as AWS itself does for non-ASCII values, and Get and Head
//     decode it, so a file name such as "café.jpg" comes back as it went in.
//
// Every call is bounded by Options.Timeout, a Get's body read included.
package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/elastiq/elastiq/services/elastiq"
)

// DefaultTimeout bounds each call when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// MaxPageSize is the most keys one ListObjectsV2 page holds.
const MaxPageSize = 1000

// API is the part of the S3 client the store uses; *s3.Client has it.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// Options configure a Store. The zero value is usable with AWS.
type Options struct {
	// Timeout bounds each S3 call, retries and reading a Get's body
	// included. Default DefaultTimeout.
	Timeout time.Duration
	// PageSize is the MaxKeys of each ListObjectsV2 page, 1..MaxPageSize.
	// Default MaxPageSize.
	PageSize int
	// UsePathStyle makes the client that Open and CreateBucket build
	// address the bucket in the path (http://host/bucket/key) rather than
	// in the host name (http://bucket.host/key), as S3-compatible servers
	// at an endpoint override (moto, MinIO) need.
	UsePathStyle bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PageSize == 0 {
		o.PageSize = MaxPageSize
	}
	if o.PageSize < 1 || o.PageSize > MaxPageSize {
		return o, fmt.Errorf("page size %d: want 1..%d", o.PageSize, MaxPageSize)
	}
	return o, nil
}

// Store is one S3 bucket. It is safe for concurrent use and holds no
// goroutines, so it needs no Close.
type Store struct {
	api    API
	bucket string
	opts   Options
}

var _ elastiq.ObjectStore = (*Store)(nil)

// New returns the store of bucket, reached through api. It makes no call.
// Options.UsePathStyle has no effect here: it is api's business.
func New(api API, bucket string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", bucket, err)
	}
	return &Store{api: api, bucket: bucket, opts: opts}, nil
}

// newClient returns the S3 client for cfg and opts that Open uses. A GET
// whose answer carries a checksum is still validated; the SDK's warning for
// one that carries none (every GET from AWS-compatible servers such as
// moto_server, and objects written without checksums) is not printed.
func newClient(cfg aws.Config, opts Options) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.UsePathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}

// Open returns the store of bucket with an S3 client made from cfg, after
// checking that the bucket exists and is reachable (HeadBucket; a missing
// bucket is a wrapped elastiq.ErrNotFound).
func Open(ctx context.Context, cfg aws.Config, bucket string, opts Options) (*Store, error) {
	client := newClient(cfg, opts)
	s, err := New(client, bucket, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, mapError(err))
	}
	return s, nil
}

// Bucket is the store's bucket name.
func (s *Store) Bucket() string { return s.bucket }

// Put writes obj under key, replacing any object there.
func (s *Store) Put(ctx context.Context, key string, obj elastiq.Object) error {
	meta, err := encodeMetadata(obj.Metadata)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(obj.Body),
		ContentLength: aws.Int64(int64(len(obj.Body))),
		Metadata:      meta,
	}
	if obj.ContentType != "" {
		in.ContentType = aws.String(obj.ContentType)
	}
	if _, err := s.api.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put %s: %w", key, mapError(err))
	}
	return nil
}

// Get reads the object under key; a missing key is a wrapped
// elastiq.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (elastiq.Object, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("get %s: %w", key, mapError(err))
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return elastiq.Object{}, fmt.Errorf("get %s: read body: %w", key, err)
	}
	obj, err := toObject(out.ContentType, out.Metadata)
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	obj.Body = buf.Bytes()
	return obj, nil
}

// Head reads the content type and metadata of the object under key; a
// missing key is a wrapped elastiq.ErrNotFound.
func (s *Store) Head(ctx context.Context, key string) (elastiq.Object, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	out, err := s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("head %s: %w", key, mapError(err))
	}
	obj, err := toObject(out.ContentType, out.Metadata)
	if err != nil {
		return elastiq.Object{}, fmt.Errorf("head %s: %w", key, err)
	}
	return obj, nil
}

func toObject(contentType *string, meta map[string]string) (elastiq.Object, error) {
	m, err := decodeMetadata(meta)
	if err != nil {
		return elastiq.Object{}, err
	}
	return elastiq.Object{ContentType: aws.ToString(contentType), Metadata: m}, nil
}

// List returns every key under prefix in lexical (byte) order, reading
// ListObjectsV2 pages of Options.PageSize keys, each page its own call with
// its own timeout.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	pages := s3.NewListObjectsV2Paginator(s.api, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(int32(s.opts.PageSize)),
	})
	var keys []string
	for pages.HasMorePages() {
		page, err := s.nextPage(ctx, pages)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, mapError(err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	// S3 lists in UTF-8 byte order already; other servers need not.
	slices.Sort(keys)
	return keys, nil
}

func (s *Store) nextPage(ctx context.Context, pages *s3.ListObjectsV2Paginator) (*s3.ListObjectsV2Output, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return pages.NextPage(ctx)
}

// Delete removes the object under key; a missing key is not an error (S3
// answers 204 either way).
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if _, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("delete %s: %w", key, mapError(err))
	}
	return nil
}

// CreateBucket creates bucket with a client made from cfg and opts, for
// tests and for developing the distributed mode against a local
// S3-compatible server; in AWS the Pulumi program creates the bucket. A
// bucket this account already owns is not an error.
func CreateBucket(ctx context.Context, cfg aws.Config, bucket string, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	if cfg.Region != "" && cfg.Region != "us-east-1" {
		// us-east-1 is the default location and must not be named.
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(cfg.Region),
		}
	}
	_, err = newClient(cfg, opts).CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// mapError wraps elastiq.ErrNotFound around the S3 errors that mean the key
// or bucket is not there, keeping the S3 error in the chain too: NoSuchKey
// (GetObject), NotFound (HeadObject and HeadBucket, which have no error body,
// so any 404 there), NoSuchBucket.
func mapError(err error) error {
	var (
		noKey    *types.NoSuchKey
		notFound *types.NotFound
		noBucket *types.NoSuchBucket
		apiErr   smithy.APIError
		respErr  *awshttp.ResponseError
	)
	switch {
	case errors.As(err, &noKey), errors.As(err, &notFound), errors.As(err, &noBucket),
		errors.As(err, &apiErr) && slices.Contains([]string{"NoSuchKey", "NotFound", "NoSuchBucket"}, apiErr.ErrorCode()),
		errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusNotFound:
		return fmt.Errorf("%w: %w", elastiq.ErrNotFound, err)
	}
	return err
}

// encodeMetadata lower-cases the keys and makes the values header-safe.
func encodeMetadata(meta map[string]string) (map[string]string, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		lk := strings.ToLower(k)
		if !validMetaKey(lk) {
			return nil, fmt.Errorf("metadata key %q: want letters, digits, '-' or '.'", k)
		}
		if _, dup := out[lk]; dup {
			return nil, fmt.Errorf("metadata key %q: S3 keys are case-insensitive and another key is the same in lower case", k)
		}
		out[lk] = encodeMetaValue(v)
	}
	return out, nil
}

// validMetaKey: lower-case letters, digits, '-' and '.'. S3 would take '_'
// too, but servers behind WSGI (moto) and many proxies drop header names
// with underscores, silently; Put refuses them instead.
func validMetaKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// encodeMetaValue returns v as is when it survives an HTTP header round
// trip (printable ASCII, no surrounding spaces, which the SDK trims, and
// nothing that reads as an encoded-word), else as RFC 2047 "B" encoded-words
// of whole characters, each within the 75 characters RFC 2047 allows.
func encodeMetaValue(v string) string {
	safe := !strings.Contains(v, "=?") && strings.TrimSpace(v) == v
	for i := 0; safe && i < len(v); i++ {
		safe = v[i] >= 0x20 && v[i] < 0x7f
	}
	if safe {
		return v
	}
	const maxChunk = 45 // bytes: 60 in base64, plus "=?utf-8?b?" and "?="
	var words []string
	for len(v) > 0 {
		n := 0
		for n < len(v) {
			_, size := utf8.DecodeRuneInString(v[n:])
			if n > 0 && n+size > maxChunk {
				break
			}
			n += size
		}
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(v[:n]))+"?=")
		v = v[n:]
	}
	return strings.Join(words, " ")
}

// decodeMetadata undoes encodeMetadata (and AWS's own RFC 2047 encoding of
// non-ASCII values); keys are lower-case already.
func decodeMetadata(meta map[string]string) (map[string]string, error) {
	if len(meta) == 0 {
		return map[string]string{}, nil
	}
	var dec mime.WordDecoder
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		if strings.Contains(v, "=?") {
			d, err := dec.DecodeHeader(v)
			if err != nil {
				return nil, fmt.Errorf("metadata %s: %w", k, err)
			}
			v = d
		}
		out[strings.ToLower(k)] = v
	}
	return out, nil
}
