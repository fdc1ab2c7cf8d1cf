package ec2fleet

import (
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
)

// moto also answers the IMDS paths on its own port, but its token response
// has no X-aws-ec2-metadata-token-ttl-seconds header, which the SDK needs
// ("unable to parse API token"), and its instance ID is always i-fake,
// which its EC2 does not know. Hence this double.

// fakeIMDS is a test double of the EC2 instance metadata service that
// speaks IMDSv2 as EC2 does with "HttpTokens: required": PUT
// /latest/api/token with a TTL header (1 to 21600 s) issues a token, and
// GET /latest/meta-data/instance-id answers only with a valid token, 401
// otherwise. With v1Only set it is an old IMDS that knows no tokens (404
// on the PUT) and answers GETs without one.
type fakeIMDS struct {
	instanceID string
	v1Only     bool

	mu       sync.Mutex
	tokens   map[string]bool
	puts     int
	gets     int
	tokenGET int // GETs that carried a valid token
}

func newFakeIMDS(t *testing.T, instanceID string, v1Only bool) (*fakeIMDS, string) {
	f := &fakeIMDS{instanceID: instanceID, v1Only: v1Only, tokens: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		f.puts++
		if f.v1Only {
			http.NotFound(w, r)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad ttl", http.StatusBadRequest)
			return
		}
		tok := rand.Text()
		f.tokens[tok] = true
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		w.Write([]byte(tok))
	case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/instance-id":
		f.gets++
		valid := f.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
		if !valid && !f.v1Only {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if valid {
			f.tokenGET++
		}
		w.Write([]byte(f.instanceID))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeIMDS) counts() (puts, gets, tokenGETs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts, f.gets, f.tokenGET
}

func TestSelfStopStopsOwnInstance(t *testing.T) {
	env := newTestEnv(t)
	f := env.fleet(t, nil)
	ctx := testCtx(t)
	launched, err := f.Launch(ctx, 2, "")
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	me, other := launched[0].ID, launched[1].ID
	waitStates(t, f, []string{me, other}, elastiq.InstanceRunning)

	md, endpoint := newFakeIMDS(t, me, false)
	self, err := NewSelf(env.awsCfg, SelfConfig{IMDSEndpoint: endpoint, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("NewSelf: %v", err)
	}
	id, err := self.Stop(ctx)
	if err != nil || id != me {
		t.Fatalf("Stop() = %q, %v, want %q, nil", id, err, me)
	}
	if puts, gets, tokenGETs := md.counts(); puts < 1 || gets != tokenGETs || tokenGETs < 1 {
		t.Errorf("IMDS saw %d token PUTs and %d GETs (%d with a token), want IMDSv2: a PUT, then GETs all with the token", puts, gets, tokenGETs)
	}
	waitStates(t, f, []string{me}, elastiq.InstanceStopped)
	if got := states(t, f)[other]; got != elastiq.InstanceRunning {
		t.Errorf("after the self-stop of %s, %s is %s, want running", me, other, got)
	}
}

func TestSelfState(t *testing.T) {
	env := newTestEnv(t)
	f := env.fleet(t, nil)
	ctx := testCtx(t)
	launched, err := f.Launch(ctx, 1, "")
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	me := launched[0].ID
	waitStates(t, f, []string{me}, elastiq.InstanceRunning)
	_, endpoint := newFakeIMDS(t, me, false)
	self, err := NewSelf(env.awsCfg, SelfConfig{IMDSEndpoint: endpoint, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("NewSelf: %v", err)
	}
	if id, state, err := self.State(ctx); err != nil || id != me || state != elastiq.InstanceRunning {
		t.Fatalf("State() = %q, %q, %v; want %q, running", id, state, err, me)
	}
	if err := f.Terminate(ctx, []string{me}); err != nil {
		t.Fatal(err)
	}
	// moto moves to terminated at once; EC2 shows shutting-down first.
	if _, state, err := self.State(ctx); err != nil || (state != elastiq.InstanceShuttingDown && state != elastiq.InstanceTerminated) {
		t.Errorf("State() after Terminate = %q, %v; want shutting-down or terminated", state, err)
	}
}

func TestSelfInstanceIDRefusesIMDSv1(t *testing.T) {
	md, endpoint := newFakeIMDS(t, "i-0123456789abcdef0", true)
	self, err := NewSelf(aws.Config{Region: awstest.Region}, SelfConfig{IMDSEndpoint: endpoint, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("NewSelf: %v", err)
	}
	if id, err := self.InstanceID(testCtx(t)); err == nil {
		t.Errorf("InstanceID() from an IMDSv1-only service = %q, nil, want an error", id)
	}
	if _, gets, _ := md.counts(); gets != 0 {
		t.Errorf("IMDS saw %d GETs without a token, want 0 (no IMDSv1 fallback)", gets)
	}
}

func TestSelfInstanceIDErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	_, notAnID := newFakeIMDS(t, "<html>captive portal</html>", false)
	tests := []struct {
		name     string
		endpoint string
	}{
		{name: "metadata service down", endpoint: closed},
		{name: "answer is not an instance ID", endpoint: notAnID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self, err := NewSelf(aws.Config{Region: awstest.Region}, SelfConfig{IMDSEndpoint: tt.endpoint, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatalf("NewSelf: %v", err)
			}
			if id, err := self.InstanceID(testCtx(t)); err == nil {
				t.Errorf("InstanceID() = %q, nil, want an error", id)
			}
			if id, err := self.Stop(testCtx(t)); err == nil {
				t.Errorf("Stop() = %q, nil, want an error", id)
			}
		})
	}
}
