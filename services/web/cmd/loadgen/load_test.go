package main

import (
	"errors"
	"testing"
)

func TestJudge(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		err    error
		want   string
		wantV  verdict
	}{
		{name: "bare label", status: 200, body: "Paul", want: "Paul", wantV: correct},
		{name: "trailing newline", status: 200, body: "Paul\n", want: "Paul", wantV: correct},
		{name: "name and label", status: 200, body: "test_00:Paul", want: "test_00:Paul", wantV: correct},
		{name: "other label", status: 200, body: "Bob", want: "Paul", wantV: wrong},
		{name: "case matters", status: 200, body: "paul", want: "Paul", wantV: wrong},
		{name: "empty answer", status: 200, body: "", want: "Paul", wantV: wrong},
		{name: "name of another image", status: 200, body: "test_10:Paul", want: "test_00:Paul", wantV: wrong},
		{name: "bare label for inputFile", status: 200, body: "Paul", want: "test_00:Paul", wantV: wrong},
		{name: "right text, error status", status: 500, body: "Paul", want: "Paul", wantV: failed},
		{name: "gateway timeout", status: 504, body: "timed out, id 01h...", want: "Paul", wantV: failed},
		{name: "accepted is not an answer", status: 202, body: "Paul", want: "Paul", wantV: failed},
		{name: "transport error", status: 0, err: errors.New("connection refused"), want: "Paul", wantV: failed},
		{name: "body cut short", status: 200, body: "Pa", err: errors.New("unexpected EOF"), want: "Paul", wantV: failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge(tt.status, tt.body, tt.err, tt.want); got != tt.wantV {
				t.Errorf("judge(%d, %q, %v, %q) = %v, want %v", tt.status, tt.body, tt.err, tt.want, got, tt.wantV)
			}
		})
	}
}
