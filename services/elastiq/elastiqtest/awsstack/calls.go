package awsstack

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one AWS API call that went through a Recorder.
type Call struct {
	Time time.Time
	// AccessKeyID signed the call ("" when it was not signed).
	AccessKeyID string
	// Service is the signing name: sqs, s3, ec2, iam.
	Service string
	// Action is the IAM action the call needs, as "service:Name"
	// (sqs:SendMessage, s3:GetObject, ec2:RunInstances). S3 calls are
	// named from their method and path: GET, HEAD object is s3:GetObject,
	// GET bucket s3:ListBucket, PUT object s3:PutObject, DELETE object
	// s3:DeleteObject.
	Action string
	// Resource is the ARN of what the call acts on, as moto authorizes
	// it: the queue's ARN for SQS, the bucket or object for S3, "*" for
	// the rest.
	Resource string
	// Status is the HTTP status of the answer.
	Status int
	// QueueDeleted: an SQS call on a queue deleted earlier through the
	// recorder. moto authorizes a call on a queue it does not have against
	// the resource "*", so a grant scoped to queue ARNs is denied (403)
	// where AWS would check the queue's ARN and answer QueueDoesNotExist.
	QueueDeleted bool
	// Duration is how long the server took to answer (a long poll's wait
	// included).
	Duration time.Duration
}

// Denied reports whether the server denied the call as AWS would: a 401
// or 403, except moto's 403 for a deleted queue (QueueDeleted).
func (c Call) Denied() bool {
	return (c.Status == http.StatusUnauthorized || c.Status == http.StatusForbidden) && !c.QueueDeleted
}

// Recorder is a reverse proxy in front of an AWS-compatible server that
// records every call made through it. It is a test's view of what the
// programs ask of AWS: which actions, on what, and with which answer.
type Recorder struct {
	// URL is the proxy's endpoint, for the programs' -endpoint.
	URL string
	// account and region of the server, for the ARNs.
	account, region string

	mu      sync.Mutex
	calls   []Call
	secrets map[string]string // access key ID -> secret, for resignForMoto
	deleted map[string]bool   // queue ARNs deleted through the recorder
}

// AddSecret tells the recorder a user's secret key (see resignForMoto).
func (r *Recorder) AddSecret(k Keys) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets == nil {
		r.secrets = map[string]string{}
	}
	r.secrets[k.AccessKeyID] = k.SecretAccessKey
}

// NewRecorder starts a recording proxy to target, closed at the end of the
// test. Queue ARNs are made for account and region.
func NewRecorder(tb testing.TB, target, account, region string) *Recorder {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	r := &Recorder{account: account, region: region}
	proxy := httputil.NewSingleHostReverseProxy(u)
	// A client that gives up (a long poll cancelled at shutdown) is not
	// news: answer 502 without logging.
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c := r.describe(req)
		if c.Service == "s3" && strings.Contains(req.URL.RawQuery, "%2F") {
			r.resignForMoto(req)
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(sw, req)
		c.Status, c.Duration = sw.status, time.Since(c.Time)
		r.mu.Lock()
		if c.Service == "sqs" {
			switch {
			case c.Action == "sqs:DeleteQueue" && c.Status == http.StatusOK:
				if r.deleted == nil {
					r.deleted = map[string]bool{}
				}
				r.deleted[c.Resource] = true
			case c.Action == "sqs:CreateQueue":
				delete(r.deleted, c.Resource)
			default:
				c.QueueDeleted = r.deleted[c.Resource]
			}
		}
		r.calls = append(r.calls, c)
		r.mu.Unlock()
	}))
	tb.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Calls returns the calls recorded so far, in the order they were answered.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// describe names the call req makes. It reads the body of the calls that
// carry their action in it (SQS's JSON protocol, the query protocol of EC2
// and IAM) and puts it back for the proxy.
func (r *Recorder) describe(req *http.Request) Call {
	c := Call{Time: time.Now(), Resource: "*"}
	c.AccessKeyID, c.Service = credential(req.Header.Get("Authorization"))
	if c.Service == "s3" {
		c.Action, c.Resource = s3Action(req.Method, req.URL)
		return c
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	if target := req.Header.Get("X-Amz-Target"); target != "" {
		// JSON protocol (SQS): "AmazonSQS.SendMessage".
		_, name, _ := strings.Cut(target, ".")
		// AWS authorizes a batch as its single call.
		c.Action = c.Service + ":" + strings.TrimSuffix(name, "Batch")
		var in struct{ QueueUrl, QueueName, Name string }
		switch {
		case json.Unmarshal(body, &in) != nil:
		case in.QueueUrl != "":
			c.Resource = "arn:aws:sqs:" + r.region + ":" + r.account + ":" + in.QueueUrl[strings.LastIndex(in.QueueUrl, "/")+1:]
		case c.Service == "sqs" && in.QueueName != "":
			// CreateQueue: the queue it makes.
			c.Resource = "arn:aws:sqs:" + r.region + ":" + r.account + ":" + in.QueueName
		case c.Service == "ssm" && in.Name != "":
			// A parameter: "/elastiq/dev/admin-token".
			c.Resource = "arn:aws:ssm:" + r.region + ":" + r.account + ":parameter/" + strings.TrimPrefix(in.Name, "/")
		}
		return c
	}
	// Query protocol (EC2, IAM): Action=Name in the form.
	form, _ := url.ParseQuery(string(body))
	if a := form.Get("Action"); a != "" {
		c.Action = c.Service + ":" + a
	} else if a := req.URL.Query().Get("Action"); a != "" {
		c.Action = c.Service + ":" + a
	}
	return c
}

// credential reads the access key ID and the service from a SigV4
// Authorization header: "AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...".
func credential(auth string) (key, service string) {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) < 4 {
		return parts[0], ""
	}
	return parts[0], parts[3]
}

// s3Action names a path-style S3 call: /bucket or /bucket/key.
func s3Action(method string, u *url.URL) (action, resource string) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	resource = "arn:aws:s3:::" + bucket
	if key == "" {
		switch method {
		case http.MethodGet, http.MethodHead:
			return "s3:ListBucket", resource
		case http.MethodPut:
			return "s3:CreateBucket", resource
		case http.MethodDelete:
			return "s3:DeleteBucket", resource
		}
		return "s3:" + method + "Bucket", resource
	}
	resource += "/" + key
	switch method {
	case http.MethodGet, http.MethodHead:
		return "s3:GetObject", resource
	case http.MethodPut:
		return "s3:PutObject", resource
	case http.MethodDelete:
		return "s3:DeleteObject", resource
	}
	return "s3:" + method + "Object", resource
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// resignForMoto works around a moto bug (getmoto/moto#5948): with IAM
// enforced, moto checks an S3 signature against the request's query decoded
// once, so a "/" that the client rightly signed as %2F (a ListObjectsV2
// prefix such as gallery/faces/) fails as SignatureDoesNotMatch. The request
// is signed again, with the same user's key, over the canonical request
// moto computes; moto then authorizes that user's call as it would any
// other. AWS itself needs none of this.
func (r *Recorder) resignForMoto(req *http.Request) {
	auth := req.Header.Get("Authorization")
	id, _ := credential(auth)
	r.mu.Lock()
	secret, ok := r.secrets[id]
	r.mu.Unlock()
	_, scope, _ := strings.Cut(auth, "Credential=")
	scope, _, _ = strings.Cut(scope, ",")
	parts := strings.Split(scope, "/") // key/date/region/service/aws4_request
	_, signed, _ := strings.Cut(auth, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	if !ok || len(parts) != 5 {
		return // not a user of this test: left to fail as it would
	}
	query, err := url.QueryUnescape(req.URL.RawQuery)
	if err != nil {
		return
	}
	pairs := strings.Split(query, "&")
	slices.Sort(pairs)
	var headers strings.Builder
	for _, h := range strings.Split(signed, ";") {
		v := req.Header.Get(h)
		if h == "host" {
			v = req.Host
		}
		headers.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	canonical := strings.Join([]string{req.Method, req.URL.EscapedPath(), strings.Join(pairs, "&"),
		headers.String(), signed, req.Header.Get("X-Amz-Content-Sha256")}, "\n")
	date := req.Header.Get("X-Amz-Date")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + strings.Join(parts[1:], "/") + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + secret)
	for _, p := range parts[1:] {
		key = hmacSHA256(key, p)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+scope+", SignedHeaders="+signed+", Signature="+sig)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
