// Package elastiq holds the domain of the elastiq image-recognition service:
// the request and result that travel through the pipeline, and the small
// interfaces the tiers use to reach a queue, an object store, a result cache,
// a fleet of workers and a classifier.
//
// It imports nothing of AWS or of any backend. Each backend lives in its own
// package (memqueue, diskstore, memcache, localfleet, and the AWS ones) and
// the programs under services/ wire them together.
package elastiq

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Errors shared by every backend. Backends wrap them so callers can test
// with errors.Is.
var (
	// ErrNotFound: the key, object, request or instance does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalidReceipt: a receipt handle is unknown or no longer current
	// (its message was deleted, or its visibility expired and it was
	// delivered again).
	ErrInvalidReceipt = errors.New("invalid receipt handle")
	// ErrTooLarge: a value is larger than the cache accepts.
	ErrTooLarge = errors.New("value too large")
	// ErrIncorrectState: an instance's state does not allow the transition
	// (starting a terminated instance, stopping one that is stopping), as
	// EC2's IncorrectInstanceState.
	ErrIncorrectState = errors.New("incorrect instance state")
)

// RequestID identifies one recognition request. The web tier mints it; it is
// never derived from the uploaded file's name, since two clients may both send
// test_00.jpg. It is 26 characters of lower-case Crockford-style base32: a
// 48-bit millisecond timestamp followed by 80 random bits, so IDs sort by
// time of arrival.
type RequestID string

const requestIDLen = 26

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewRequestID mints a new, unique request ID for time now.
func NewRequestID(now time.Time) RequestID {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		// crypto/rand.Read never returns an error on supported platforms.
		panic(fmt.Sprintf("elastiq: read random bytes: %v", err))
	}
	return RequestID(idEncoding.EncodeToString(b[:]))
}

// ParseRequestID checks that s is a well-formed request ID. It is safe to use
// the result in object keys and file paths.
func ParseRequestID(s string) (RequestID, error) {
	if len(s) != requestIDLen {
		return "", fmt.Errorf("request id %q: want %d characters", s, requestIDLen)
	}
	if _, err := idEncoding.DecodeString(s); err != nil {
		return "", fmt.Errorf("request id %q: not base32", s)
	}
	return RequestID(s), nil
}

// Time is when the ID was minted (to the millisecond): when its request was
// accepted. It is the zero time for a malformed ID.
func (id RequestID) Time() time.Time {
	b, err := idEncoding.DecodeString(string(id))
	if err != nil || len(b) < 6 {
		return time.Time{}
	}
	ms := binary.BigEndian.Uint64(append(make([]byte, 2, 8), b[:6]...))
	return time.UnixMilli(int64(ms))
}

// Object-store prefixes. Inputs are written by the web tier, outputs by the
// workers; output/<id> is the durable copy of a result.
const (
	InputPrefix  = "input/"
	OutputPrefix = "output/"
)

// InputKey is the object key of a request's uploaded image.
func InputKey(id RequestID) string { return InputPrefix + string(id) }

// SecondInputKey is the object key of a verification's second image.
func SecondInputKey(id RequestID) string { return InputPrefix + string(id) + ".second" }

// OutputKey is the object key of a request's result.
func OutputKey(id RequestID) string { return OutputPrefix + string(id) }

// IDFromKey returns the request ID at the end of an input/ or output/ key.
func IDFromKey(key string) (RequestID, error) {
	for _, p := range []string{InputPrefix, OutputPrefix} {
		if rest, ok := strings.CutPrefix(key, p); ok {
			return ParseRequestID(rest)
		}
	}
	return "", fmt.Errorf("key %q: not under %s or %s", key, InputPrefix, OutputPrefix)
}

// Request is the message the web tier puts on the request queue. It carries
// the input's key and, for a small image (see MaxInlineImage), the image
// itself.
type Request struct {
	ID          RequestID `json:"id"`
	InputKey    string    `json:"input_key"`
	FileName    string    `json:"file_name"`
	ContentType string    `json:"content_type,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
	// Image is the upload itself when the web tier put it in the request;
	// the worker then reads no input/ (which holds it all the same: the
	// durable copy, for recovery and for GET).
	Image []byte `json:"image,omitempty"`
	// Options are the client's choices for this recognition.
	Options Options `json:"options,omitzero"`
	// Kind is what to do: recognise the image's faces (KindRecognize, the
	// zero value), or tell whether it and a second image show the same
	// person (KindVerify), the second at SecondKey (SecondInputKey) and,
	// when small, in Second.
	Kind      string `json:"kind,omitempty"`
	SecondKey string `json:"second_key,omitempty"`
	Second    []byte `json:"second,omitempty"`
	// Subject is the person a KindEnroll request enrols the face under;
	// LargestFace takes the largest of several faces instead of refusing.
	Subject     string `json:"subject,omitempty"`
	LargestFace bool   `json:"largest_face,omitempty"`
	// GalleryRevision is the web tier's latest gallery change when it
	// sent the request: the worker answers with a gallery at least that
	// new (see GalleryFacesPrefix).
	GalleryRevision RequestID `json:"gallery_revision,omitempty"`
	// ReplyTo is the queue (its URL) the result goes on: the response
	// queue of the web instance that accepted the request, when each has
	// its own (see ReplyQueues). Empty: the workers' response queue.
	ReplyTo string `json:"reply_to,omitempty"`
}

// Kinds of request.
const (
	KindRecognize = ""
	KindVerify    = "verify"
)

// Verification is the answer to a KindVerify request: the similarity of
// the largest faces of the two images, and whether it reaches Threshold.
type Verification struct {
	Similarity float64 `json:"similarity"`
	Same       bool    `json:"same"`
	Threshold  float64 `json:"threshold"`
	// Faces are the two faces compared, first image first.
	Faces [2]Face `json:"faces"`
}

// FaceVerifier is a classifier that can compare the faces of two images.
type FaceVerifier interface {
	Verify(ctx context.Context, first, second []byte, opts Options) (Verification, error)
}

// Options of one recognition, chosen by its client (POST /v1/recognitions).
// The zero value is the classifier's defaults.
type Options struct {
	// Threshold, if set, is the least similarity that names someone,
	// instead of the classifier's.
	Threshold *float64 `json:"threshold,omitempty"`
	// MinZ, if set, is the least z that names someone below the certain
	// similarity, instead of the one calibrated on the gallery (0: no z
	// needed, the threshold alone decides).
	MinZ *float64 `json:"min_z,omitempty"`
	// TopK is how many candidates to report per face, best first (0: the
	// classifier's default).
	TopK int `json:"top_k,omitempty"`
}

// MaxMinZ is the largest least z a request may ask for.
const MaxMinZ = 100

// MaxTopK is the most candidates a request may ask for per face.
const MaxTopK = 20

// Validate reports an option out of range.
func (o Options) Validate() error {
	if o.Threshold != nil && (*o.Threshold < -1 || *o.Threshold > 1 || math.IsNaN(*o.Threshold)) {
		return fmt.Errorf("threshold %v: want a cosine similarity from -1 to 1", *o.Threshold)
	}
	if o.MinZ != nil && !(*o.MinZ >= 0 && *o.MinZ <= MaxMinZ) {
		return fmt.Errorf("min_z %v: want a number from 0 to %d", *o.MinZ, MaxMinZ)
	}
	if o.TopK < 0 || o.TopK > MaxTopK {
		return fmt.Errorf("top_k %d: want 1 to %d", o.TopK, MaxTopK)
	}
	return nil
}

// Face is one face found in an image, with the evidence for its label.
type Face struct {
	// Box is where the face is, in the image's pixels.
	Box Box `json:"box"`
	// Score is the detector's confidence, 0 to 1.
	Score float64 `json:"score"`
	// Label is the nearest enrolled person when Similarity reaches the
	// threshold (and, below the certain similarity, Z the least z), else
	// the unknown label.
	Label      string  `json:"label"`
	Similarity float64 `json:"similarity"`
	// Z is how many standard deviations Similarity stands above the face's
	// similarities to other enrolled people: how much the nearest person
	// stands out. Absent when too few people are enrolled for it.
	Z *float64 `json:"z,omitempty"`
	// Candidates are the nearest enrolled people, best first.
	Candidates []Candidate `json:"candidates,omitempty"`
}

// Box is a rectangle in an image's pixels.
type Box struct {
	X1 float64 `json:"x1"`
	Y1 float64 `json:"y1"`
	X2 float64 `json:"x2"`
	Y2 float64 `json:"y2"`
}

// Candidate is an enrolled person and how similar a face is to them (the
// best of their enrolled faces).
type Candidate struct {
	Label      string  `json:"label"`
	Similarity float64 `json:"similarity"`
}

// Recognition is what a FaceRecognizer answers: the label of the largest
// face (a Classifier's answer), the threshold it was decided at, and every
// face found, largest first.
type Recognition struct {
	Label string
	// Threshold, Certain and MinZ are the rule the labels were decided by:
	// the least similarity, and below Certain the least z (0: none).
	Threshold, Certain, MinZ float64
	Faces                    []Face
}

// FaceRecognizer is a Classifier that also reports every face it finds and
// takes the client's options. The worker prefers it when its classifier
// has it.
type FaceRecognizer interface {
	Classifier
	RecognizeFaces(ctx context.Context, image []byte, opts Options) (Recognition, error)
}

// MaxInlineImage is the largest image the distributed web tier puts in its
// request by default (-inline-max): base64 makes it 4/3 as large, and with
// the request's other fields the message stays under 64 KiB, which SQS bills
// as one request. The worker's read of input/ is saved, one S3 call of a
// request's five or so.
const MaxInlineImage = 47 << 10

// Status of a request.
type Status string

const (
	StatusPending Status = "pending"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// Result is what a worker writes to output/<id> and sends on the response
// queue. A failed classification is a Result with StatusFailed and Error set,
// never a dropped message.
type Result struct {
	ID       RequestID `json:"id"`
	FileName string    `json:"file_name"`
	Status   Status    `json:"status"`
	Label    string    `json:"label,omitempty"`
	Error    string    `json:"error,omitempty"`
	// Worker names the instance that produced the result.
	Worker      string    `json:"worker,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  time.Time `json:"finished_at"`
	// Classify is the time the classifier alone took.
	Classify time.Duration `json:"classify_ns"`
	// Deliveries is how many times the request had been delivered to a
	// worker when this result was made, that delivery included (the
	// queue's receive count; 0 when unknown).
	Deliveries int `json:"deliveries,omitempty"`
	// Threshold is the similarity the label was decided at, and Faces
	// every face found, largest first: from a FaceRecognizer only.
	Threshold *float64 `json:"threshold,omitempty"`
	// Certain and MinZ are the rest of the rule: below the Certain
	// similarity a name also needs a z of MinZ (0: none).
	Certain *float64 `json:"certain,omitempty"`
	MinZ    *float64 `json:"min_z,omitempty"`
	Faces   []Face   `json:"faces,omitempty"`
	// Verification is the answer of a KindVerify request, whose Label is
	// then "same" or "different".
	Verification *Verification `json:"verification,omitempty"`
	// Enrolled is the answer of a KindEnroll request.
	Enrolled *Enrolled `json:"enrolled,omitempty"`
}

// Encode and decode the messages that travel on the queues and in the stores.
// JSON keeps them readable in the S3 console and in a memcached dump.

// EncodeRequest encodes r for the request queue.
func EncodeRequest(r Request) ([]byte, error) { return json.Marshal(r) }

// DecodeRequest decodes a request-queue message body.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	if _, err := ParseRequestID(string(r.ID)); err != nil {
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	return r, nil
}

// EncodeResult encodes r for the response queue, the cache and output/.
func EncodeResult(r Result) ([]byte, error) { return json.Marshal(r) }

// DecodeResult decodes a result.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("decode result: %w", err)
	}
	if _, err := ParseRequestID(string(r.ID)); err != nil {
		return Result{}, fmt.Errorf("decode result: %w", err)
	}
	return r, nil
}

// Message is one delivery of a queue message. The same message may be
// delivered more than once (at-least-once); each delivery has its own
// receipt handle, and only the newest one can delete the message or change
// its visibility.
type Message struct {
	ID            string
	Body          []byte
	ReceiptHandle string
	// ReceiveCount is how many times the message has been delivered,
	// this delivery included.
	ReceiveCount int
}

// The queue contract every tier is written against: SQS's limits, and the
// visibility timeout the deployment gives the request and response queues.
const (
	// MaxReceiveWait is the longest long-poll wait of one Receive.
	MaxReceiveWait = 20 * time.Second
	// MaxReceiveBatch is the most messages one Receive returns.
	MaxReceiveBatch = 10
	// DefaultVisibilityTimeout is how long a received message stays
	// invisible to other receivers, unless extended.
	DefaultVisibilityTimeout = 15 * time.Second
)

// QueueStats are a queue's approximate counts, as SQS reports them.
type QueueStats struct {
	// Visible messages are waiting to be received.
	Visible int
	// InFlight messages were received and are neither deleted nor visible
	// again yet.
	InFlight int
}

// Queue has the semantics of an SQS standard queue: at-least-once delivery,
// a visibility timeout after which an undeleted message is delivered again,
// receipt handles, and long polling.
type Queue interface {
	// Send enqueues one message body.
	Send(ctx context.Context, body []byte) error
	// Receive returns up to max messages, waiting up to wait for the first
	// one to arrive (long polling). It returns no messages and no error when
	// the wait ends empty. Received messages are invisible to other
	// receivers for the queue's visibility timeout.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	// Delete removes a received message for good.
	Delete(ctx context.Context, receiptHandle string) error
	// ChangeVisibility makes a received message invisible for timeout from
	// now (a heartbeat for long work); zero makes it visible at once.
	ChangeVisibility(ctx context.Context, receiptHandle string, timeout time.Duration) error
	// Stats reports approximate visible and in-flight counts.
	Stats(ctx context.Context) (QueueStats, error)
}

// ReplyQueues returns the queue at a request's ReplyTo URL, to send its
// result on. A result sent to a queue that no longer exists (its web
// instance is gone) fails with ErrNotFound: output/<id> still has it.
type ReplyQueues func(url string) (Queue, error)

// Destination is the queue a result goes on: the one replyTo names, opened
// by open, or responses when replyTo is empty or open is nil.
func (open ReplyQueues) Destination(replyTo string, responses Queue) (Queue, error) {
	if replyTo == "" || open == nil {
		return responses, nil
	}
	return open(replyTo)
}

// ReplyGone reports whether err, from sending a result toward replyTo,
// means the queue it names no longer exists: its web instance stopped. That
// is no failure: output/ has the result, for any other instance to find.
func ReplyGone(replyTo string, err error) bool { return replyTo != "" && errors.Is(err, ErrNotFound) }

// Object is a stored blob with its content type and user metadata.
type Object struct {
	Body        []byte
	ContentType string
	Metadata    map[string]string
}

// Metadata keys of an input object: the upload's original file name, when
// it was accepted (RFC 3339 with nanoseconds), the client's options (JSON,
// when any), for a verification its kind and second image's key, for an
// enrolment its subject, and the queue its result goes on, so an accepted
// input can be turned back into its Request (see RequestFromInput).
const (
	MetaFileName    = "file-name"
	MetaSubmittedAt = "submitted-at"
	MetaOptions     = "options"
	MetaKind        = "kind"
	MetaSecondKey   = "second-key"
	MetaSubject     = "subject"
	MetaLargestFace = "largest-face"
	MetaReplyTo     = "reply-to"
)

// InputMetadata is the metadata the web tier stores with an input.
func InputMetadata(r Request) map[string]string {
	m := map[string]string{
		MetaFileName:    r.FileName,
		MetaSubmittedAt: r.SubmittedAt.UTC().Format(time.RFC3339Nano),
	}
	if r.Options != (Options{}) {
		b, _ := json.Marshal(r.Options) // numbers and a pointer to one: cannot fail
		m[MetaOptions] = string(b)
	}
	if r.Kind != KindRecognize {
		m[MetaKind] = r.Kind
		m[MetaSecondKey] = r.SecondKey
	}
	if r.ReplyTo != "" {
		m[MetaReplyTo] = r.ReplyTo
	}
	if r.Kind == KindEnroll {
		m[MetaSubject] = r.Subject
		if r.LargestFace {
			m[MetaLargestFace] = "true"
		}
	}
	return m
}

// RequestFromInput rebuilds the Request of a stored input from its key and
// metadata, as written by InputMetadata.
func RequestFromInput(key string, obj Object) (Request, error) {
	id, err := IDFromKey(key)
	if err != nil {
		return Request{}, err
	}
	r := Request{ID: id, InputKey: key, FileName: obj.Metadata[MetaFileName], ContentType: obj.ContentType}
	if s := obj.Metadata[MetaSubmittedAt]; s != "" {
		if r.SubmittedAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return Request{}, fmt.Errorf("input %s: %s: %w", key, MetaSubmittedAt, err)
		}
	}
	r.Kind, r.SecondKey = obj.Metadata[MetaKind], obj.Metadata[MetaSecondKey]
	r.Subject, r.LargestFace = obj.Metadata[MetaSubject], obj.Metadata[MetaLargestFace] == "true"
	r.ReplyTo = obj.Metadata[MetaReplyTo]
	if s := obj.Metadata[MetaOptions]; s != "" {
		if err := json.Unmarshal([]byte(s), &r.Options); err != nil {
			return Request{}, fmt.Errorf("input %s: %s: %w", key, MetaOptions, err)
		}
	}
	return r, nil
}

// ObjectStore holds the inputs and outputs under one bucket-like namespace
// with the input/ and output/ prefixes. Put overwrites: writing the same
// output twice leaves one object (idempotent).
type ObjectStore interface {
	Put(ctx context.Context, key string, obj Object) error
	// Get returns ErrNotFound (wrapped) when the key does not exist.
	Get(ctx context.Context, key string) (Object, error)
	// Head is Get without the body (Body is nil): content type and metadata.
	Head(ctx context.Context, key string) (Object, error)
	// List returns the keys under prefix, in lexical order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// MaxCacheKeyLen is the longest key memcached accepts.
const MaxCacheKeyLen = 250

// ValidateCacheKey reports whether memcached would accept key: 1 to
// MaxCacheKeyLen bytes, none of them a space or control character. Every
// Cache refuses other keys, so code that works on one works on all.
func ValidateCacheKey(key string) error {
	if key == "" || len(key) > MaxCacheKeyLen {
		return fmt.Errorf("key of %d bytes: want 1 to %d", len(key), MaxCacheKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("key %q: space or control character at %d", key, i)
		}
	}
	return nil
}

// Cache is the shared result store, with memcached semantics: values expire
// after their TTL and may be evicted at any time, so a miss is normal and
// the durable copy is in output/. Keys follow ValidateCacheKey; a value over
// the cache's item size is refused with ErrTooLarge.
type Cache interface {
	// Get returns ErrNotFound (wrapped) on a miss.
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// InstanceState is a worker instance's lifecycle state, as EC2 names them.
type InstanceState string

const (
	InstancePending      InstanceState = "pending"
	InstanceRunning      InstanceState = "running"
	InstanceStopping     InstanceState = "stopping"
	InstanceStopped      InstanceState = "stopped"
	InstanceShuttingDown InstanceState = "shutting-down"
	InstanceTerminated   InstanceState = "terminated"
)

// Instance is one worker machine.
type Instance struct {
	ID    string
	State InstanceState
	// LaunchedAt is when the instance was first launched.
	LaunchedAt time.Time
	// StateSince is when the instance entered State, where known.
	StateSince time.Time
}

// Fleet is the set of worker instances the scaler manages. Terminated
// instances may still be listed for a while, as EC2 does.
type Fleet interface {
	List(ctx context.Context) ([]Instance, error)
	// Start starts stopped instances.
	Start(ctx context.Context, ids []string) error
	// Launch creates n new instances. A retried call with the same token
	// launches nothing new and returns the instances of the first call.
	Launch(ctx context.Context, n int, token string) ([]Instance, error)
	// Stop stops running instances; they keep their disk and can be started
	// again faster than a new launch.
	Stop(ctx context.Context, ids []string) error
	// Terminate removes instances for good.
	Terminate(ctx context.Context, ids []string) error
}

// Classifier labels an image: for a face, the person's name.
// Implementations are safe for concurrent use.
type Classifier interface {
	Classify(ctx context.Context, image []byte) (string, error)
}

// ScalingEvent is a scaling decision that asked for an action, with the
// reason its policy gave.
type ScalingEvent struct {
	At        time.Time `json:"at"`
	Start     int       `json:"start,omitempty"`
	Launch    int       `json:"launch,omitempty"`
	Stop      int       `json:"stop,omitempty"`
	Terminate int       `json:"terminate,omitempty"`
	Reason    string    `json:"reason"`
}

// FleetUsage is the worker fleet's time and its estimated cost since the
// scaler started: seconds spent in each state (summed over instances),
// billed seconds (pending and running, at least EC2's minimum per start) and
// their estimated cost in dollars at the configured prices, stopped
// instances' storage included.
type FleetUsage struct {
	InstanceSeconds map[InstanceState]float64 `json:"instance_seconds"`
	BilledSeconds   float64                   `json:"billed_seconds"`
	CostDollars     float64                   `json:"cost_dollars"`
}

// ScalingReport is what a scaler tells observers (the web tier's dashboard):
// the fleet's usage so far and its recent scaling events, oldest first.
type ScalingReport struct {
	Usage  FleetUsage     `json:"usage"`
	Events []ScalingEvent `json:"events"`
}
