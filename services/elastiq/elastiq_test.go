package elastiq_test

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

func TestRequestIDRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	seen := make(map[elastiq.RequestID]bool)
	for range 1000 {
		id := elastiq.NewRequestID(now)
		if seen[id] {
			t.Fatalf("NewRequestID returned %s twice", id)
		}
		seen[id] = true
		got, err := elastiq.ParseRequestID(string(id))
		if err != nil || got != id {
			t.Fatalf("ParseRequestID(%q) = %q, %v; want %q, nil", id, got, err, id)
		}
		if !id.Time().Equal(now) {
			t.Fatalf("%s.Time() = %v, want %v", id, id.Time(), now)
		}
	}
	if tm := elastiq.RequestID("not an id").Time(); !tm.IsZero() {
		t.Errorf("Time of a malformed ID = %v, want zero", tm)
	}
}

func TestRequestIDSortsByTime(t *testing.T) {
	a := elastiq.NewRequestID(time.UnixMilli(1_700_000_000_000))
	b := elastiq.NewRequestID(time.UnixMilli(1_700_000_000_001))
	if !(a < b) {
		t.Errorf("id at t=0 %s does not sort before id at t=1ms %s", a, b)
	}
}

func TestParseRequestIDRejects(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{name: "empty", in: ""},
		{name: "file name", in: "test_00.jpg"},
		{name: "path traversal", in: "../../../../etc/passwd/xxxxx"},
		{name: "upper case", in: "01JDZ3Q9XK5M0000000000000A"},
		{name: "letter u", in: "0000000000000000000000000u"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := elastiq.ParseRequestID(tt.in); err == nil {
				t.Errorf("ParseRequestID(%q) = %q, nil; want error", tt.in, id)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	id := elastiq.NewRequestID(time.Now())
	for _, key := range []string{elastiq.InputKey(id), elastiq.OutputKey(id)} {
		got, err := elastiq.IDFromKey(key)
		if err != nil || got != id {
			t.Errorf("IDFromKey(%q) = %q, %v; want %q", key, got, err, id)
		}
	}
	if _, err := elastiq.IDFromKey("other/" + string(id)); err == nil {
		t.Errorf("IDFromKey(other/...) = nil error, want error")
	}
}

func TestResultRoundTrip(t *testing.T) {
	in := elastiq.Result{
		ID:       elastiq.NewRequestID(time.Now()),
		FileName: "test_00.jpg",
		Status:   elastiq.StatusDone,
		Label:    "Paul",
		Classify: 7 * time.Millisecond,
	}
	b, err := elastiq.EncodeResult(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := elastiq.DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Label != in.Label || out.Classify != in.Classify || out.Status != in.Status {
		t.Errorf("DecodeResult(EncodeResult(%+v)) = %+v", in, out)
	}
	if _, err := elastiq.DecodeResult([]byte(`{"id":"x"}`)); err == nil {
		t.Errorf("DecodeResult with a bad id: nil error, want error")
	}
}

func TestRequestFromInput(t *testing.T) {
	want := elastiq.Request{
		ID:          elastiq.NewRequestID(time.Now()),
		FileName:    "test_07.jpg",
		ContentType: "image/jpeg",
		SubmittedAt: time.Date(2026, 11, 27, 3, 4, 5, 6, time.UTC),
	}
	want.InputKey = elastiq.InputKey(want.ID)
	obj := elastiq.Object{ContentType: want.ContentType, Metadata: elastiq.InputMetadata(want)}
	got, err := elastiq.RequestFromInput(want.InputKey, obj)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RequestFromInput() = %+v, want %+v", got, want)
	}
	obj.Metadata[elastiq.MetaSubmittedAt] = "yesterday"
	if _, err := elastiq.RequestFromInput(want.InputKey, obj); err == nil {
		t.Errorf("RequestFromInput with a bad time: nil error, want error")
	}

	// The client's options survive too (a recovered request keeps them).
	threshold := 0.55
	want.Options = elastiq.Options{Threshold: &threshold, TopK: 3}
	obj.Metadata = elastiq.InputMetadata(want)
	if got, err = elastiq.RequestFromInput(want.InputKey, obj); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("RequestFromInput() with options = %+v, %v; want %+v", got, err, want)
	}
	// A verification keeps its kind and second image.
	want.Kind, want.SecondKey = elastiq.KindVerify, elastiq.SecondInputKey(want.ID)
	obj.Metadata = elastiq.InputMetadata(want)
	if got, err = elastiq.RequestFromInput(want.InputKey, obj); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("RequestFromInput() of a verification = %+v, %v; want %+v", got, err, want)
	}
	// An enrolment keeps its subject and choice of face.
	enrol := want
	enrol.Kind, enrol.SecondKey, enrol.Subject, enrol.LargestFace = elastiq.KindEnroll, "", "Laura_Linney", true
	if got, err = elastiq.RequestFromInput(enrol.InputKey, elastiq.Object{ContentType: enrol.ContentType, Metadata: elastiq.InputMetadata(enrol)}); err != nil || !reflect.DeepEqual(got, enrol) {
		t.Errorf("RequestFromInput() of an enrolment = %+v, %v; want %+v", got, err, enrol)
	}
	// A request for a web instance's own response queue keeps where its
	// result goes (a recovered request is answered to the same instance).
	routed := want
	routed.ReplyTo = "http://127.0.0.1:4566/000000000000/elastiq-dev-reply-0a1b2c"
	if got, err = elastiq.RequestFromInput(routed.InputKey, elastiq.Object{ContentType: routed.ContentType, Metadata: elastiq.InputMetadata(routed)}); err != nil || !reflect.DeepEqual(got, routed) {
		t.Errorf("RequestFromInput() with a reply queue = %+v, %v; want %+v", got, err, routed)
	}
	if _, err := elastiq.IDFromKey(want.SecondKey); err == nil {
		t.Errorf("IDFromKey(%s) = nil error: recovery would take the second image for a request", want.SecondKey)
	}
	obj.Metadata[elastiq.MetaOptions] = "{"
	if _, err := elastiq.RequestFromInput(want.InputKey, obj); err == nil {
		t.Errorf("RequestFromInput with bad options: nil error, want error")
	}
}

func TestOptionsValidate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name string
		o    elastiq.Options
		ok   bool
	}{
		{name: "defaults", ok: true},
		{name: "threshold and top_k", o: elastiq.Options{Threshold: f(0.5), TopK: 5}, ok: true},
		{name: "threshold -1", o: elastiq.Options{Threshold: f(-1)}, ok: true},
		{name: "threshold over 1", o: elastiq.Options{Threshold: f(1.5)}},
		{name: "threshold NaN", o: elastiq.Options{Threshold: f(math.NaN())}},
		{name: "min_z 0 (no z rule)", o: elastiq.Options{MinZ: f(0)}, ok: true},
		{name: "min_z 4.5", o: elastiq.Options{MinZ: f(4.5)}, ok: true},
		{name: "min_z negative", o: elastiq.Options{MinZ: f(-1)}},
		{name: "min_z too large", o: elastiq.Options{MinZ: f(elastiq.MaxMinZ + 1)}},
		{name: "min_z NaN", o: elastiq.Options{MinZ: f(math.NaN())}},
		{name: "top_k negative", o: elastiq.Options{TopK: -1}},
		{name: "top_k too many", o: elastiq.Options{TopK: elastiq.MaxTopK + 1}},
	} {
		if err := tt.o.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateCacheKey(t *testing.T) {
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{key: "result/06h1p8kv9re41mesjctyr7dy5c", ok: true},
		{key: strings.Repeat("k", elastiq.MaxCacheKeyLen), ok: true},
		{key: ""},
		{key: strings.Repeat("k", elastiq.MaxCacheKeyLen+1)},
		{key: "with space"},
		{key: "tab\there"},
		{key: "del\x7f"},
	} {
		if err := elastiq.ValidateCacheKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("ValidateCacheKey(%q) = %v, want ok %v", tt.key, err, tt.ok)
		}
	}
}
