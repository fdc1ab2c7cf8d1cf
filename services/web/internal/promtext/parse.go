package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Family is a metric family read back by Parse.
type Family struct {
	Name, Type, Help string
	Samples          []ParsedSample
}

// ParsedSample is one sample line read back by Parse.
type ParsedSample struct {
	// Name is the sample's metric name: the family name, or for a
	// histogram the family name with _bucket, _sum or _count.
	Name   string
	Labels map[string]string
	Value  float64
}

// Parse reads the text format strictly, as a test or a tool checking an
// exporter would: every family starts with # HELP then # TYPE, every sample
// belongs to the family above it, names and labels are well formed, values
// are numbers, no series appears twice, no family is declared twice, and a
// histogram's buckets are cumulative and end with le="+Inf" equal to _count.
func Parse(r io.Reader) ([]Family, error) {
	var (
		fams   []Family
		seen   = map[string]bool{}
		series = map[string]bool{}
		sc     = bufio.NewScanner(r)
		line   int
	)
	for sc.Scan() {
		line++
		text := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("parse metrics: line %d %q: %s", line, text, fmt.Sprintf(format, args...))
		}
		switch {
		case text == "":
			return nil, fail("empty line")
		case strings.HasPrefix(text, "# HELP "):
			name, help, _ := strings.Cut(strings.TrimPrefix(text, "# HELP "), " ")
			if !metricName.MatchString(name) {
				return nil, fail("bad metric name")
			}
			if seen[name] {
				return nil, fail("family %s declared twice", name)
			}
			seen[name] = true
			fams = append(fams, Family{Name: name, Help: help})
		case strings.HasPrefix(text, "# TYPE "):
			name, typ, _ := strings.Cut(strings.TrimPrefix(text, "# TYPE "), " ")
			if len(fams) == 0 || fams[len(fams)-1].Name != name || fams[len(fams)-1].Type != "" {
				return nil, fail("TYPE does not follow the HELP of %s", name)
			}
			if !slices.Contains([]string{"counter", "gauge", "histogram"}, typ) {
				return nil, fail("unknown type %q", typ)
			}
			fams[len(fams)-1].Type = typ
		case strings.HasPrefix(text, "#"):
			return nil, fail("unexpected comment")
		default:
			if len(fams) == 0 || fams[len(fams)-1].Type == "" {
				return nil, fail("sample before HELP and TYPE")
			}
			f := &fams[len(fams)-1]
			s, key, err := parseSample(text)
			if err != nil {
				return nil, fail("%v", err)
			}
			if !belongs(f, s.Name) {
				return nil, fail("sample %s in family %s (%s)", s.Name, f.Name, f.Type)
			}
			if series[key] {
				return nil, fail("series appears twice")
			}
			series[key] = true
			if f.Type == "counter" && (s.Value < 0 || math.IsNaN(s.Value)) {
				return nil, fail("counter value %v", s.Value)
			}
			f.Samples = append(f.Samples, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	for _, f := range fams {
		if f.Type == "" {
			return nil, fmt.Errorf("parse metrics: family %s has no TYPE", f.Name)
		}
		if f.Type == "histogram" {
			if err := checkHistogram(f); err != nil {
				return nil, fmt.Errorf("parse metrics: %w", err)
			}
		}
	}
	return fams, nil
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func belongs(f *Family, name string) bool {
	if f.Type != "histogram" {
		return name == f.Name
	}
	return slices.Contains([]string{f.Name + "_bucket", f.Name + "_sum", f.Name + "_count"}, name)
}

// parseSample parses `name{a="x",b="y"} value` and returns the sample and a
// key that identifies its series.
func parseSample(text string) (ParsedSample, string, error) {
	s := ParsedSample{Labels: map[string]string{}}
	i := strings.IndexAny(text, "{ ")
	if i < 0 {
		return s, "", fmt.Errorf("no value")
	}
	s.Name = text[:i]
	if !metricName.MatchString(s.Name) {
		return s, "", fmt.Errorf("bad metric name %q", s.Name)
	}
	rest := text[i:]
	var names []string
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			name, after, ok := strings.Cut(rest, `="`)
			if !ok || !labelName.MatchString(name) {
				return s, "", fmt.Errorf("bad label near %q", rest)
			}
			value, after, err := unquoteLabel(after)
			if err != nil {
				return s, "", err
			}
			if _, dup := s.Labels[name]; dup {
				return s, "", fmt.Errorf("label %s twice", name)
			}
			s.Labels[name] = value
			names = append(names, name)
			rest = after
			if r, ok := strings.CutPrefix(rest, ","); ok {
				rest = r
			} else if !strings.HasPrefix(rest, "}") {
				return s, "", fmt.Errorf("want , or } near %q", rest)
			}
		}
		rest = rest[1:]
	}
	v, ok := strings.CutPrefix(rest, " ")
	if !ok || v == "" || strings.Contains(v, " ") {
		return s, "", fmt.Errorf("want one space then a value (no timestamps), got %q", rest)
	}
	val, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return s, "", fmt.Errorf("bad value %q", v)
	}
	s.Value = val
	slices.Sort(names)
	var key strings.Builder
	key.WriteString(s.Name)
	for _, n := range names {
		fmt.Fprintf(&key, "\xff%s=%s", n, s.Labels[n])
	}
	return s, key.String(), nil
}

// unquoteLabel reads an escaped label value up to its closing quote and
// returns the value and what follows the quote.
func unquoteLabel(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("dangling backslash")
			}
			i++
			switch s[i] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", fmt.Errorf("bad escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated label value")
}

func checkHistogram(f Family) error {
	var (
		prevLE    = math.Inf(-1)
		prevCount = -1.0
		inf       = -1.0
		count     = -1.0
		hasSum    bool
	)
	for _, s := range f.Samples {
		switch s.Name {
		case f.Name + "_bucket":
			le, err := strconv.ParseFloat(s.Labels["le"], 64)
			if err != nil {
				return fmt.Errorf("histogram %s: bucket le %q", f.Name, s.Labels["le"])
			}
			if le <= prevLE || s.Value < prevCount {
				return fmt.Errorf("histogram %s: buckets not increasing at le=%s", f.Name, s.Labels["le"])
			}
			prevLE, prevCount = le, s.Value
			if math.IsInf(le, 1) {
				inf = s.Value
			}
		case f.Name + "_count":
			count = s.Value
		case f.Name + "_sum":
			hasSum = true
		}
	}
	if inf < 0 || count < 0 || !hasSum {
		return fmt.Errorf("histogram %s: want a +Inf bucket, _sum and _count", f.Name)
	}
	if inf != count {
		return fmt.Errorf("histogram %s: +Inf bucket %v != _count %v", f.Name, inf, count)
	}
	return nil
}
