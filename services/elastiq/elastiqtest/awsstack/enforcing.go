package awsstack

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
)

// Enforcing is a Stack on a moto server of the test's own that checks every
// call against the IAM policies of the caller, as AWS does: a program that
// runs with the keys of a User may do only what that user's policy grants.
// A Recorder in front of the server keeps every call, so a test can also see
// which actions each program used.
//
// What moto checks, and what it does not (moto 5): it denies a call whose
// action no statement allows for the call's resource. It authorizes SQS
// calls against the queue's ARN and S3 calls against the bucket or object
// ARN, but every EC2 and SSM call against the resource "*", so an EC2
// statement scoped to instance ARNs never matches there (MotoPolicy). It does not evaluate
// Condition blocks (they pass), and it does not check iam:PassRole or the
// ec2:CreateTags that tagging at launch implies. A call on a queue it no
// longer has is authorized against "*", so it is denied where AWS would
// answer QueueDoesNotExist; the Recorder marks it (Call.QueueDeleted).
type Enforcing struct {
	*Stack
	// Recorder has every call made to the server after IAM enforcement
	// began, the test's own included.
	Recorder *Recorder
	// Account and Region of the server, for ARNs.
	Account, Region string
	// The ARNs of the stack's queues and bucket.
	RequestsARN, DeadLetterARN, ResponsesARN, BucketARN string

	iam   *iam.Client
	mu    sync.Mutex
	users map[string]string // access key ID -> user name
}

// Keys are an IAM user's access key.
type Keys struct {
	User                         string
	AccessKeyID, SecretAccessKey string
}

// Env is the environment that makes a program signing with the SDK's
// default chain use the keys (on top of elastiqtest.IsolateAWSEnv's).
func (k Keys) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + k.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + k.SecretAccessKey, "AWS_SESSION_TOKEN="}
}

// adminPolicy allows everything: the test's own setup and checks.
const adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// NewEnforcing starts a moto server of the test's own (IAM enforcement is
// global to a server, so the shared one cannot have it), creates an
// administrator user whose keys Config carries, turns enforcement on, and
// creates the stack's queues and bucket as New does. Endpoint is the
// Recorder's. It sets the process environment as elastiqtest.AWSEnv does
// (with fake keys that the server refuses: a program needs a User's).
func NewEnforcing(tb testing.TB, visibility time.Duration, maxReceives int) *Enforcing {
	tb.Helper()
	return newOwn(tb, visibility, maxReceives, true)
}

// NewUnenforced is NewEnforcing on a server that checks no policy: the same
// users, keys and recorder, for measuring what the programs cost in calls
// and time without moto's own IAM evaluation (Python, on every call) in the
// way.
func NewUnenforced(tb testing.TB, visibility time.Duration, maxReceives int) *Enforcing {
	tb.Helper()
	return newOwn(tb, visibility, maxReceives, false)
}

func newOwn(tb testing.TB, visibility time.Duration, maxReceives int, enforce bool) *Enforcing {
	tb.Helper()
	server := awstest.StartMoto(tb)
	elastiqtest.IsolateAWSEnv(tb)
	ctx, cancel := context.WithTimeout(context.Background(), elastiqtest.Timeout)
	defer cancel()

	e := &Enforcing{Region: elastiqtest.AWSRegion, users: map[string]string{}}
	open := aws.Config{Region: e.Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(server)}
	e.iam = iam.NewFromConfig(open)
	admin := e.user(ctx, tb, "admin", adminPolicy)
	if enforce {
		if err := awstest.EnforceIAM(server); err != nil {
			tb.Fatal(err)
		}
	}

	e.Recorder = NewRecorder(tb, server, e.Account, e.Region)
	e.Recorder.AddSecret(admin)
	cfg := aws.Config{Region: e.Region, BaseEndpoint: aws.String(e.Recorder.URL),
		Credentials: credentials.NewStaticCredentialsProvider(admin.AccessKeyID, admin.SecretAccessKey, "")}
	e.iam = iam.NewFromConfig(cfg)
	e.Stack = &Stack{Endpoint: e.Recorder.URL, Config: cfg, Name: elastiqtest.UniqueName(tb)}
	e.create(tb, visibility, maxReceives)
	e.RequestsARN = e.queueARN(e.RequestsURL)
	e.DeadLetterARN = e.queueARN(e.DeadLetterURL)
	e.ResponsesARN = e.queueARN(e.ResponsesURL)
	e.BucketARN = "arn:aws:s3:::" + e.Bucket
	return e
}

// User creates an IAM user named name with policy, a document as AWS reads
// it, as its only inline policy (translated by MotoPolicy), and returns its
// access key.
func (e *Enforcing) User(tb testing.TB, name, policy string) Keys {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), elastiqtest.Timeout)
	defer cancel()
	moto, err := MotoPolicy(policy)
	if err != nil {
		tb.Fatalf("user %s: %v", name, err)
	}
	return e.user(ctx, tb, name, moto)
}

func (e *Enforcing) user(ctx context.Context, tb testing.TB, name, policy string) Keys {
	tb.Helper()
	u, err := e.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)})
	if err != nil {
		tb.Fatalf("CreateUser %s: %v", name, err)
	}
	if e.Account == "" {
		// arn:aws:iam::123456789012:user/name
		if f := strings.Split(aws.ToString(u.User.Arn), ":"); len(f) > 4 {
			e.Account = f[4]
		}
	}
	if _, err := e.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(name),
		PolicyName: aws.String(name), PolicyDocument: aws.String(policy)}); err != nil {
		tb.Fatalf("PutUserPolicy %s: %v", name, err)
	}
	k, err := e.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		tb.Fatalf("CreateAccessKey %s: %v", name, err)
	}
	keys := Keys{User: name, AccessKeyID: aws.ToString(k.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(k.AccessKey.SecretAccessKey)}
	e.mu.Lock()
	e.users[keys.AccessKeyID] = name
	e.mu.Unlock()
	if e.Recorder != nil {
		e.Recorder.AddSecret(keys)
	}
	return keys
}

// UserOf names the user whose access key ID is id ("" for none).
func (e *Enforcing) UserOf(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.users[id]
}

// queueARN is the ARN of the queue at url.
func (e *Enforcing) queueARN(url string) string {
	return "arn:aws:sqs:" + e.Region + ":" + e.Account + ":" + url[strings.LastIndex(url, "/")+1:]
}
