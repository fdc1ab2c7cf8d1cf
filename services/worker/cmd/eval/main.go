// Command eval measures the face classifier on a labelled test set: how many
// photos of enrolled people it names right, how many strangers it answers
// Unknown, and how often it finds no face. With -alter it also queries
// altered copies of each photo (mirrored, half size, darker, JPEG quality
// 40), as users' photos come.
//
//	eval -gallery datasets/lfw-sample/gallery -queries datasets/lfw-sample
//
// The queries folder is a labelled folder as a gallery is (<Label>/*.jpg, or
// images with a labels.csv); the label Unknown (-unknown-label) marks a
// stranger, who must not be named. It runs the classifier in this process,
// as a worker does: the web tier passes images through unchanged, so the
// answers are those of POST / on a stack with the same gallery.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/flagenv"
	"github.com/elastiq/elastiq/services/worker/classify/face"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "eval:", err)
		os.Exit(1)
	}
}

type options struct {
	face    face.Config
	queries string
	alter   bool
	misses  int
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{face: face.DefaultConfig()}
	o.face.ModelDir = ".models"
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.face.ModelDir, "models", o.face.ModelDir, "folder of the runtime and models (scripts/fetch-models.sh)")
	fs.StringVar(&o.face.Gallery, "gallery", "", "the enrolled faces: <Label>/*.jpg, or images with a labels.csv (required)")
	fs.StringVar(&o.face.CacheDir, "cache", "", "enrolment cache folder (default: none)")
	fs.StringVar(&o.queries, "queries", "", "the test set: <Label>/*.jpg, or images with a labels.csv (required)")
	fs.Float64Var(&o.face.Threshold, "threshold", o.face.Threshold, "least cosine similarity that names someone")
	fs.Float64Var(&o.face.Certain, "certain", o.face.Certain, "similarity from which the nearest person is named whatever the face's z")
	fs.Float64Var(&o.face.FalseMatchRate, "false-match-rate", o.face.FalseMatchRate,
		"share of strangers the least z is calibrated on the gallery to name (0: no z rule)")
	fs.Float64Var(&o.face.SecondLook, "second-look", o.face.SecondLook, "embed a face again, with its mirror image, when its best match is below this (0: never, 1: always)")
	fs.StringVar(&o.face.UnknownLabel, "unknown-label", o.face.UnknownLabel, "the answer, and the queries' label, for a stranger")
	fs.IntVar(&o.face.Sessions, "sessions", 2, "images analysed at once")
	fs.BoolVar(&o.alter, "alter", false, "also query altered copies of each photo: mirrored, double and half size, darker, JPEG quality 40, turned 25 degrees, small in a large photo")
	fs.IntVar(&o.misses, "misses", 40, "list at most this many misses")
	if err := flagenv.Parse(fs, args[1:], getenv); err != nil {
		return o, err
	}
	if err := flagenv.Required(fs, "gallery", "queries"); err != nil {
		return o, err
	}
	return o, o.face.Validate()
}

// outcome of one query.
type outcome struct {
	file, variant, want, got string
	similarity               float64
	z                        *float64
	noFace                   bool
	err                      error
}

func (o outcome) right() bool { return o.err == nil && o.got == o.want }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	queries, err := face.ListLabelled(o.queries)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := face.Open(ctx, o.face, log)
	if err != nil {
		return err
	}
	defer c.Close()
	e := c.Enrollment()
	fmt.Fprintf(stdout, "gallery %s: %d faces of %d people (%d skipped: no face); queries %s: %d\n",
		o.face.Gallery, e.Faces, e.Identities, len(e.Skipped), o.queries, len(queries))
	fmt.Fprintf(stdout, "rule: similarity at least %.2f, and below %.2f a z of at least %.2f (calibrated for a false-match rate of %g)\n",
		o.face.Threshold, o.face.Certain, c.MinZ(), o.face.FalseMatchRate)

	variants := []variant{{name: "original"}}
	if o.alter {
		variants = append(variants, alterations...)
	}
	var results []outcome
	var elapsed time.Duration
	for _, q := range queries {
		data, err := os.ReadFile(filepath.Join(o.queries, q.Path))
		if err != nil {
			return err
		}
		for _, v := range variants {
			img := data
			if v.apply != nil {
				if img, err = v.apply(data); err != nil {
					return fmt.Errorf("%s %s: %w", v.name, q.Path, err)
				}
			}
			start := time.Now()
			m, err := c.Recognize(ctx, img)
			elapsed += time.Since(start)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r := outcome{file: q.Path, variant: v.name, want: q.Label, got: m.Label, similarity: m.Similarity, z: m.Z, err: err}
			r.noFace = errors.Is(err, face.ErrNoFace)
			results = append(results, r)
		}
	}
	report(stdout, results, variants, o.face.UnknownLabel, o.misses)
	fmt.Fprintf(stdout, "%.1f ms per query (%d queries, %d sessions)\n",
		float64(elapsed.Microseconds())/1000/float64(max(len(results), 1)), len(results), o.face.Sessions)
	return nil
}

// report prints, per variant, the enrolled people's photos named right,
// named wrong, answered unknown and with no face found, and the strangers
// answered unknown; then the misses.
func report(w io.Writer, results []outcome, variants []variant, unknown string, maxMisses int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "queries\tenrolled\tnamed right\twrong name\tunknown\tno face\tstrangers\tanswered unknown\tnamed\t")
	for _, v := range variants {
		var enrolled, right, wrong, unk, noFace, strangers, strangerUnknown int
		for _, r := range results {
			if r.variant != v.name {
				continue
			}
			if r.want == unknown {
				strangers++
				if r.noFace || (r.err == nil && r.got == unknown) {
					strangerUnknown++ // no face is not a false match
				}
				continue
			}
			enrolled++
			switch {
			case r.right():
				right++
			case r.noFace:
				noFace++
			case r.err == nil && r.got == unknown:
				unk++
			default:
				wrong++
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t\n", v.name, enrolled, pct(right, enrolled), wrong, unk, noFace,
			strangers, pct(strangerUnknown, strangers), strangers-strangerUnknown)
	}
	tw.Flush()

	var misses []outcome
	for _, r := range results {
		if !r.right() && !(r.want == unknown && r.noFace) {
			misses = append(misses, r)
		}
	}
	if len(misses) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d misses", len(misses))
	if len(misses) > maxMisses {
		fmt.Fprintf(w, " (the first %d)", maxMisses)
		misses = misses[:maxMisses]
	}
	fmt.Fprintln(w, ":")
	for _, r := range misses {
		got := r.got
		if r.err != nil {
			got = "error: " + r.err.Error()
		}
		z := ""
		if r.z != nil {
			z = fmt.Sprintf(", z %.2f", *r.z)
		}
		fmt.Fprintf(w, "  %-40s %-9s want %-25s got %s (similarity %.2f%s)\n", r.file, r.variant, r.want, got, r.similarity, z)
	}
}

func pct(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%.1f%%)", n, 100*float64(n)/float64(of))
}

// variant is a way of altering a query photo.
type variant struct {
	name  string
	apply func([]byte) ([]byte, error)
}

// alterations are one change each; all but jpeg40 are stored losslessly
// (PNG), so that they do not add JPEG's loss to their own.
var alterations = []variant{
	{"mirrored", func(b []byte) ([]byte, error) { return transform(b, mirror, false) }},
	{"double", func(b []byte) ([]byte, error) { return transform(b, double, false) }},
	{"half", func(b []byte) ([]byte, error) { return transform(b, half, false) }},
	{"darker", func(b []byte) ([]byte, error) { return transform(b, darker, false) }},
	{"jpeg40", func(b []byte) ([]byte, error) {
		return transform(b, func(m image.Image) image.Image { return m }, true)
	}},
	{"rotated", func(b []byte) ([]byte, error) { return transform(b, rotate(25), false) }},
	{"small", func(b []byte) ([]byte, error) { return transform(b, inLarge, false) }},
}

// rotate turns the photo deg degrees about its centre (counter-clockwise),
// on a canvas of the same size; the corners it uncovers are mid grey.
func rotate(deg float64) func(image.Image) image.Image {
	return func(m image.Image) image.Image {
		r := m.Bounds()
		out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
		sin, cos := math.Sincos(deg * math.Pi / 180)
		cx, cy := float64(r.Dx()-1)/2, float64(r.Dy()-1)/2
		for y := 0; y < r.Dy(); y++ {
			for x := 0; x < r.Dx(); x++ {
				dx, dy := float64(x)-cx, float64(y)-cy
				sx, sy := int(math.Round(cx+cos*dx-sin*dy)), int(math.Round(cy+sin*dx+cos*dy))
				if sx < 0 || sy < 0 || sx >= r.Dx() || sy >= r.Dy() {
					out.Set(x, y, color.Gray{128})
					continue
				}
				out.Set(x, y, m.At(r.Min.X+sx, r.Min.Y+sy))
			}
		}
		return out
	}
}

// inLarge puts the photo, at its size, in the middle of a mid-grey photo
// eight times as wide and six times as high: a small face in a large
// photo (a 250-pixel photo becomes 2000x1500).
func inLarge(m image.Image) image.Image {
	r := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, 8*r.Dx(), 6*r.Dy()))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.Gray{128}), image.Point{}, draw.Src)
	at := image.Pt(7*r.Dx()/2, 5*r.Dy()/2)
	draw.Draw(out, image.Rectangle{Min: at, Max: at.Add(r.Size())}, m, r.Min, draw.Src)
	return out
}

// transform decodes b, applies f and encodes the result as PNG, or as JPEG
// at quality 40.
func transform(b []byte, f func(image.Image) image.Image, lossy bool) ([]byte, error) {
	m, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if lossy {
		err = jpeg.Encode(&out, f(m), &jpeg.Options{Quality: 40})
	} else {
		err = png.Encode(&out, f(m))
	}
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// double doubles the photo's size, bilinearly.
func double(m image.Image) image.Image {
	r := m.Bounds()
	at := func(x, y int) (float64, float64, float64) {
		x, y = min(max(x, 0), r.Dx()-1), min(max(y, 0), r.Dy()-1)
		cr, cg, cb, _ := m.At(r.Min.X+x, r.Min.Y+y).RGBA()
		return float64(cr), float64(cg), float64(cb)
	}
	out := image.NewRGBA(image.Rect(0, 0, 2*r.Dx(), 2*r.Dy()))
	for y := 0; y < 2*r.Dy(); y++ {
		for x := 0; x < 2*r.Dx(); x++ {
			sx, sy := (float64(x)+0.5)/2-0.5, (float64(y)+0.5)/2-0.5
			x0, y0 := int(math.Floor(sx)), int(math.Floor(sy))
			fx, fy := sx-float64(x0), sy-float64(y0)
			var c [3]float64
			for _, p := range []struct {
				dx, dy int
				w      float64
			}{{0, 0, (1 - fx) * (1 - fy)}, {1, 0, fx * (1 - fy)}, {0, 1, (1 - fx) * fy}, {1, 1, fx * fy}} {
				cr, cg, cb := at(x0+p.dx, y0+p.dy)
				c[0], c[1], c[2] = c[0]+p.w*cr, c[1]+p.w*cg, c[2]+p.w*cb
			}
			out.Set(x, y, color.RGBA64{uint16(c[0]), uint16(c[1]), uint16(c[2]), 0xffff})
		}
	}
	return out
}

func mirror(m image.Image) image.Image {
	r := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			out.Set(r.Dx()-1-x, y, m.At(r.Min.X+x, r.Min.Y+y))
		}
	}
	return out
}

// half averages 2x2 blocks.
func half(m image.Image) image.Image {
	r := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, r.Dx()/2, r.Dy()/2))
	for y := 0; y < r.Dy()/2; y++ {
		for x := 0; x < r.Dx()/2; x++ {
			var s [3]uint32
			for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
				cr, cg, cb, _ := m.At(r.Min.X+2*x+d[0], r.Min.Y+2*y+d[1]).RGBA()
				s[0], s[1], s[2] = s[0]+cr, s[1]+cg, s[2]+cb
			}
			out.Set(x, y, color.RGBA64{uint16(s[0] / 4), uint16(s[1] / 4), uint16(s[2] / 4), 0xffff})
		}
	}
	return out
}

// darker scales every channel to 60%.
func darker(m image.Image) image.Image {
	r := m.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			cr, cg, cb, _ := m.At(r.Min.X+x, r.Min.Y+y).RGBA()
			out.Set(x, y, color.RGBA64{uint16(cr * 6 / 10), uint16(cg * 6 / 10), uint16(cb * 6 / 10), 0xffff})
		}
	}
	return out
}
