package s3store

import (
	"maps"
	"strings"
	"testing"
)

func TestMetadataEncoding(t *testing.T) {
	tests := []struct {
		name        string
		value       string
		wantEncoded bool
	}{
		{name: "plain ASCII", value: "test_00.jpg"},
		{name: "RFC 3339", value: "2026-04-01T12:30:45.123456789Z"},
		{name: "inner spaces", value: "my photo.jpg"},
		{name: "empty", value: ""},
		{name: "non-ASCII", value: "café.jpg", wantEncoded: true},
		{name: "long non-ASCII, split on whole characters", value: strings.Repeat("é✓日", 40), wantEncoded: true},
		{name: "leading space", value: " a", wantEncoded: true},
		{name: "trailing space", value: "a ", wantEncoded: true},
		{name: "newline", value: "a\nb", wantEncoded: true},
		{name: "looks like an encoded-word", value: "=?utf-8?q?x?=", wantEncoded: true},
		{name: "invalid UTF-8", value: "a\xffb", wantEncoded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := encodeMetadata(map[string]string{"File-Name": tt.value})
			if err != nil {
				t.Fatalf("encodeMetadata: %v", err)
			}
			v, ok := enc["file-name"]
			if !ok || len(enc) != 1 {
				t.Fatalf("encodeMetadata keys = %v, want [file-name]", maps.Keys(enc))
			}
			if encoded := v != tt.value; encoded != tt.wantEncoded {
				t.Errorf("encodeMetaValue(%q) = %q, encoded %t, want %t", tt.value, v, encoded, tt.wantEncoded)
			}
			for _, word := range strings.Fields(v) {
				if tt.wantEncoded && len(word) > 75 {
					t.Errorf("encoded-word %q is %d characters, want <= 75", word, len(word))
				}
			}
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 || v[i] >= 0x7f {
					t.Fatalf("encodeMetaValue(%q) = %q, byte %#x is not printable ASCII", tt.value, v, v[i])
				}
			}
			dec, err := decodeMetadata(enc)
			if err != nil {
				t.Fatalf("decodeMetadata(%q): %v", enc, err)
			}
			if got := dec["file-name"]; got != tt.value {
				t.Errorf("decodeMetadata(encodeMetadata(%q)) = %q, want it back", tt.value, got)
			}
		})
	}
}

func TestMetadataKeys(t *testing.T) {
	tests := []struct {
		name    string
		meta    map[string]string
		wantErr bool
	}{
		{name: "elastiq keys", meta: map[string]string{"file-name": "a", "submitted-at": "b"}},
		{name: "dots and digits", meta: map[string]string{"v1.trace": "a"}},
		{name: "underscore", meta: map[string]string{"file_name": "a"}, wantErr: true},
		{name: "space", meta: map[string]string{"file name": "a"}, wantErr: true},
		{name: "empty key", meta: map[string]string{"": "a"}, wantErr: true},
		{name: "same in lower case", meta: map[string]string{"Key": "a", "key": "b"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encodeMetadata(tt.meta)
			if (err != nil) != tt.wantErr {
				t.Errorf("encodeMetadata(%q) error = %v, want error %t", tt.meta, err, tt.wantErr)
			}
		})
	}
}

func TestDecodeAWSEncodedValue(t *testing.T) {
	// AWS returns non-ASCII values RFC 2047-encoded, in either encoding.
	got, err := decodeMetadata(map[string]string{"file-name": "=?UTF-8?Q?caf=C3=A9.jpg?="})
	if err != nil || got["file-name"] != "café.jpg" {
		t.Errorf("decodeMetadata(Q-encoded) = %q, %v; want café.jpg", got, err)
	}
}
