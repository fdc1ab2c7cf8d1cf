package diskstore

import (
	"errors"
	"fmt"
	"strings"
)

// MaxKeyLen is the longest key, as with S3.
const MaxKeyLen = 1024

// ValidateKey reports whether key can name an object: 1 to MaxKeyLen
// characters of [A-Za-z0-9._/-], slash-separated segments that are neither
// empty nor "." nor "..".
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key of %d bytes: longer than %d", len(key), MaxKeyLen)
	}
	if err := validateChars(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key %q: empty, %q or %q segment", key, ".", "..")
		}
	}
	return nil
}

// validatePrefix accepts "" and any prefix of a valid key.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return fmt.Errorf("prefix of %d bytes: longer than %d", len(prefix), MaxKeyLen)
	}
	if err := validateChars(prefix); err != nil {
		return err
	}
	// Every segment but the last is complete.
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := ValidateKey(prefix[:i]); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	return nil
}

func validateChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fmt.Errorf("key %q: character %q at %d not in [A-Za-z0-9._/-]", s, c, i)
		}
	}
	return nil
}
