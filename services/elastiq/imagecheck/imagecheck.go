// Package imagecheck checks that an upload is a whole JPEG or PNG file that
// Go's decoders read, and tells from its headers alone how much memory
// decoding it will take, without decoding a pixel.
//
// Why a structural check rather than a full decode: what must be ruled out is
// an image Go cannot decode, one whose header declares absurd dimensions, and
// a file that is not whole, above all a truncated one. Walking the container
// does all three in one linear pass over bytes already in memory, without
// allocating pixels: a full decode of the 64×64 CSE546 faces was a third of
// the web tier's CPU per request, and of a 10 MiB upload declaring
// 50 megapixels would take about a second of CPU and up to 400 MB, which a
// burst of such uploads would turn into a denial of service. (Even
// image.DecodeConfig allocates 17 KiB per call, a third of the whole
// pipeline's garbage per request, so the header is parsed here too.) The
// walk accepts exactly the codings Go's decoders read: JPEG baseline,
// extended sequential and progressive with 8-bit samples and 1, 3 or 4
// components; every PNG colour type and bit depth. For PNG the check is as
// strong as a decode at catching damage, since every chunk's CRC-32 is
// verified; for JPEG it proves every segment is whole and the file ends with
// its EOI marker, but not that the entropy-coded bits inside a scan are
// valid (neither does Go's decoder, which decodes most bit flips into wrong
// pixels). Damage of that kind makes the classifier fail, and the client
// gets that failure as the result.
//
// The web tier runs Inspect on every upload and refuses an image whose
// DecodeBytes exceed what a worker may hold; a worker reads the same figure
// to wait for its decode budget.
package imagecheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrIncomplete marks a file that ends before its structure does.
var ErrIncomplete = errors.New("file ends early (truncated?)")

// Info is what Inspect learns of an image.
type Info struct {
	Format        string // "jpeg" or "png"
	Width, Height int
	// Kind says what kind of JPEG or PNG it is, in words ("progressive
	// JPEG, 3 components", "16-bit RGBA PNG, interlaced").
	Kind string
	// DecodeBytes is the memory a worker holds to decode the image and
	// classify it: what Go's decoder allocates for the pixels (and, for a
	// progressive JPEG, its coefficients; for an interlaced PNG, its largest
	// pass) plus the 8-bit RGB copy the classifiers work on. Buffers of a
	// row or a block are left out.
	DecodeBytes int64
}

const pngSignature = "\x89PNG\r\n\x1a\n"

// DefaultDecodeBudget is the memory a worker lets its decodes hold at once by
// default (its -decode-budget), and so the largest DecodeBytes the web tier
// accepts: any image of up to 50 megapixels in 8-bit samples fits (a 50 MP
// 8-bit RGBA PNG needs 350 MB), a 16-bit one of up to about 35 MP.
const DefaultDecodeBudget = 512 << 20

// Inspect checks that b is a complete, well-formed JPEG or PNG file that
// Go's decoders read, and returns its format, declared dimensions and the
// memory its decode takes. On an error the dimensions and DecodeBytes are
// still set if the header was read.
func Inspect(b []byte) (Info, error) {
	switch {
	case len(b) >= 2 && b[0] == 0xff && b[1] == markerSOI:
		return checkJPEG(b)
	case bytes.HasPrefix(b, []byte(pngSignature)):
		return checkPNG(b)
	}
	return Info{}, errors.New("neither a JPEG nor a PNG file")
}

// JPEG markers (ITU T.81, table B.1).
const (
	markerTEM   = 0x01
	markerRST0  = 0xd0
	markerRST7  = 0xd7
	markerSOI   = 0xd8
	markerEOI   = 0xd9
	markerSOS   = 0xda
	markerSOF0  = 0xc0
	markerSOF2  = 0xc2
	markerSOFF  = 0xcf
	markerDHT   = 0xc4
	markerDQT   = 0xdb
	markerDRI   = 0xdd
	markerAPP0  = 0xe0
	markerAPP15 = 0xef
	markerCOM   = 0xfe
)

// checkFrame reads a baseline, extended or progressive frame header (the
// data of an SOF0..SOF2 segment) and refuses what Go's decoder refuses:
// samples of other than 8 bits, other than 1, 3 or 4 components, repeated
// component IDs, bad quantisation table selectors and the subsampling ratios
// it does not implement (image/jpeg's processSOF).
func checkFrame(seg []byte) (width, height int, err error) {
	if len(seg) < 6 {
		return 0, 0, fmt.Errorf("jpeg: frame header of %d bytes", len(seg))
	}
	n := int(seg[5])
	if n != 1 && n != 3 && n != 4 {
		return 0, 0, fmt.Errorf("jpeg: %d colour components are not supported", n)
	}
	if len(seg) != 6+3*n {
		return 0, 0, fmt.Errorf("jpeg: frame header of %d bytes for %d components", len(seg), n)
	}
	if seg[0] != 8 {
		return 0, 0, fmt.Errorf("jpeg: %d-bit samples are not supported", seg[0])
	}
	height, width = int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:]))
	var hv [4]byte
	for i := range n {
		c := seg[6+3*i : 9+3*i]
		for j := range i {
			if seg[6+3*j] == c[0] {
				return width, height, errors.New("jpeg: repeated component identifier")
			}
		}
		if c[2] > 3 {
			return width, height, fmt.Errorf("jpeg: quantisation table %d", c[2])
		}
		hv[i] = c[1]
		h, v := c[1]>>4, c[1]&0x0f
		if h < 1 || h > 4 || v < 1 || v > 4 || h == 3 || v == 3 {
			return width, height, fmt.Errorf("jpeg: sampling factors %dx%d", h, v)
		}
		bad := false
		switch {
		case n == 3 && i == 0:
			bad = v == 4
		case n == 3 && i == 1:
			bad = (hv[0]>>4)%h != 0 || (hv[0]&0x0f)%v != 0
		case n == 3 && i == 2:
			bad = hv[1] != hv[2]
		case n == 4 && i == 0:
			bad = hv[0] != 0x11 && hv[0] != 0x22
		case n == 4 && (i == 1 || i == 2):
			bad = hv[i] != 0x11
		case n == 4 && i == 3:
			bad = hv[3] != hv[0]
		}
		if bad {
			return width, height, errors.New("jpeg: unsupported subsampling ratio")
		}
	}
	return width, height, nil
}

// checkJPEG walks the marker segments from SOI to EOI, skipping over each
// scan's entropy-coded data, and requires one frame header of a kind Go
// decodes and at least one scan before EOI. Bytes after EOI are ignored, as
// decoders do.
func checkJPEG(b []byte) (Info, error) {
	info := Info{Format: "jpeg"}
	if len(b) < 2 || b[0] != 0xff || b[1] != markerSOI {
		return info, errors.New("jpeg: no SOI marker")
	}
	var sawFrame, sawScan bool
	i := 2
	for {
		if i >= len(b) {
			return info, fmt.Errorf("jpeg: %w", ErrIncomplete)
		}
		if b[i] != 0xff {
			return info, fmt.Errorf("jpeg: byte %#02x at offset %d, want a marker", b[i], i)
		}
		for i < len(b) && b[i] == 0xff { // a marker may follow fill bytes
			i++
		}
		if i >= len(b) {
			return info, fmt.Errorf("jpeg: %w", ErrIncomplete)
		}
		m := b[i]
		i++
		switch {
		case m == markerEOI:
			if !sawScan {
				return info, errors.New("jpeg: EOI before any scan")
			}
			return info, nil
		case m == markerTEM || (m >= markerRST0 && m <= markerRST7):
			// No length. A stray restart marker after the last scan is a
			// common encoder bug that decoders ignore.
			continue
		case m == markerSOI || m == 0x00:
			return info, fmt.Errorf("jpeg: unexpected marker %#02x at offset %d", m, i-1)
		}
		if i+2 > len(b) {
			return info, fmt.Errorf("jpeg: %w", ErrIncomplete)
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if n < 2 {
			return info, fmt.Errorf("jpeg: segment %#02x at offset %d has length %d", m, i-1, n)
		}
		if i+n > len(b) {
			return info, fmt.Errorf("jpeg: %w", ErrIncomplete)
		}
		seg := b[i+2 : i+n]
		i += n
		switch {
		case m >= markerSOF0 && m <= markerSOF2:
			if sawFrame {
				return info, errors.New("jpeg: more than one frame header")
			}
			var err error
			if info.Width, info.Height, err = checkFrame(seg); err != nil {
				return info, err
			}
			info.DecodeBytes = jpegDecodeBytes(seg, m == markerSOF2)
			info.Kind = fmt.Sprintf("%s JPEG, %d components", map[bool]string{false: "sequential", true: "progressive"}[m == markerSOF2], seg[5])
			sawFrame = true
		case m == markerDHT || m == markerDQT || m == markerDRI || m == markerCOM ||
			(m >= markerAPP0 && m <= markerAPP15):
		case m == markerSOS:
			if !sawFrame {
				return info, errors.New("jpeg: scan before the frame header")
			}
			sawScan = true
			var err error
			if i, err = skipEntropyData(b, i); err != nil {
				return info, err
			}
		default:
			// What Go's decoder does not read: other frame types (lossless,
			// hierarchical, arithmetic coding) and reserved markers.
			return info, fmt.Errorf("jpeg: marker %#02x at offset %d is not supported", m, i-n-1)
		}
	}
}

// skipEntropyData returns the offset of the marker that ends the
// entropy-coded data starting at i. Inside it, 0xff is followed by 0x00
// (a stuffed byte), by a restart marker, or by fill bytes before a marker.
func skipEntropyData(b []byte, i int) (int, error) {
	for {
		j := bytes.IndexByte(b[i:], 0xff)
		if j < 0 || i+j+1 >= len(b) {
			return 0, fmt.Errorf("jpeg: scan data: %w", ErrIncomplete)
		}
		i += j
		switch next := b[i+1]; {
		case next == 0x00 || (next >= markerRST0 && next <= markerRST7):
			i += 2
		case next == 0xff:
			i++ // fill byte; look again from the next 0xff
		default:
			return i, nil
		}
	}
}

// checkPNG walks the chunks after the signature, verifying each one's
// length and CRC-32, and requires a valid IHDR first, an IDAT, and IEND.
// Bytes after IEND are ignored, as decoders do.
func checkPNG(b []byte) (Info, error) {
	info := Info{Format: "png"}
	if !bytes.HasPrefix(b, []byte(pngSignature)) {
		return info, errors.New("png: no signature")
	}
	var sawData bool
	var hdr []byte // IHDR's data
	for i, first := len(pngSignature), true; ; first = false {
		if i+12 > len(b) { // length, type, CRC
			return info, fmt.Errorf("png: %w", ErrIncomplete)
		}
		n := binary.BigEndian.Uint32(b[i:])
		typ := string(b[i+4 : i+8])
		if uint64(n) > uint64(len(b)-i-12) {
			return info, fmt.Errorf("png: chunk %q: %w", typ, ErrIncomplete)
		}
		end := i + 8 + int(n)
		if crc32.ChecksumIEEE(b[i+4:end]) != binary.BigEndian.Uint32(b[end:]) {
			return info, fmt.Errorf("png: chunk %q at offset %d: checksum mismatch", typ, i)
		}
		switch {
		case first && typ != "IHDR":
			return info, fmt.Errorf("png: first chunk %q, want IHDR", typ)
		case first:
			hdr = b[i+8 : end]
			if err := readIHDR(hdr, &info); err != nil {
				return info, err
			}
			info.DecodeBytes = pngDecodeBytes(hdr, false)
			info.Kind = pngKind(hdr)
		case typ == "tRNS" && !sawData:
			info.DecodeBytes = pngDecodeBytes(hdr, true)
		case typ == "IDAT":
			sawData = true
		case typ == "IEND":
			if !sawData {
				return info, errors.New("png: no IDAT chunk")
			}
			return info, nil
		}
		i = end + 4
	}
}

// readIHDR reads the IHDR chunk's data (PNG specification, 11.2.2).
func readIHDR(d []byte, info *Info) error {
	if len(d) != 13 {
		return fmt.Errorf("png: IHDR of %d bytes, want 13", len(d))
	}
	w, h := binary.BigEndian.Uint32(d[0:]), binary.BigEndian.Uint32(d[4:])
	if w == 0 || h == 0 || w > 1<<31-1 || h > 1<<31-1 {
		return fmt.Errorf("png: dimensions %dx%d", w, h)
	}
	depth, colour := d[8], d[9]
	var depths string
	switch colour {
	case 0: // grey
		depths = "\x01\x02\x04\x08\x10"
	case 3: // paletted
		depths = "\x01\x02\x04\x08"
	case 2, 4, 6: // RGB, grey + alpha, RGBA
		depths = "\x08\x10"
	default:
		return fmt.Errorf("png: colour type %d", colour)
	}
	if !bytes.ContainsRune([]byte(depths), rune(depth)) {
		return fmt.Errorf("png: bit depth %d with colour type %d", depth, colour)
	}
	if d[10] != 0 || d[11] != 0 || d[12] > 1 {
		return fmt.Errorf("png: compression %d, filter %d, interlace %d", d[10], d[11], d[12])
	}
	info.Width, info.Height = int(w), int(h)
	return nil
}

// decoderBytes covers what a decoder allocates whatever the image's size:
// Huffman and zlib tables, the zlib window, read buffers (measured: 60 to
// 140 KiB).
const decoderBytes = 256 << 10

// rgbBytes is the size of the 8-bit RGB copy of a w×h image, plus
// decoderBytes.
func rgbBytes(w, h int) int64 { return 3*int64(w)*int64(h) + decoderBytes }

// jpegDecodeBytes is the memory image/jpeg allocates for the frame whose
// header (already checked by checkFrame) is seg, plus the RGB copy: the
// component planes, padded to whole MCUs; for 4 components the black plane
// and the CMYK or RGBA image they are converted into; for a progressive
// frame, 64 int32 coefficients per 8×8 block of every component, kept until
// the last scan.
func jpegDecodeBytes(seg []byte, progressive bool) int64 {
	height, width := int64(binary.BigEndian.Uint16(seg[1:])), int64(binary.BigEndian.Uint16(seg[3:]))
	n := int(seg[5])
	var h, v [4]int64
	var hmax, vmax int64 = 1, 1
	for i := range n {
		f := seg[6+3*i+1]
		h[i], v[i] = int64(f>>4), int64(f&0x0f)
		if n == 1 { // one component is decoded as if unsampled
			h[i], v[i] = 1, 1
		}
		hmax, vmax = max(hmax, h[i]), max(vmax, v[i])
	}
	mxx, myy := (width+8*hmax-1)/(8*hmax), (height+8*vmax-1)/(8*vmax)
	var planes, blocks int64
	for i := range n {
		blocks += mxx * myy * h[i] * v[i]
	}
	if n == 1 {
		planes = 64 * mxx * myy
	} else {
		luma := 64 * h[0] * mxx * v[0] * myy
		planes = luma + 2*luma/((h[0]/h[1])*(v[0]/v[1]))
		if n == 4 {
			planes += 64*h[3]*mxx*v[3]*myy + 4*width*height
		}
	}
	if progressive {
		planes += 64 * 4 * blocks
	}
	return planes + rgbBytes(int(width), int(height))
}

// pngKind names a PNG's bit depth, colour type and interlacing.
func pngKind(hdr []byte) string {
	colour := map[byte]string{0: "grey", 2: "RGB", 3: "paletted", 4: "grey+alpha", 6: "RGBA"}[hdr[9]]
	kind := fmt.Sprintf("%d-bit %s PNG", hdr[8], colour)
	if hdr[12] == 1 {
		kind += ", interlaced"
	}
	return kind
}

// pngDecodeBytes is the memory image/png allocates for the image whose
// IHDR data (already checked by readIHDR) is hdr, plus the RGB copy: the
// image in the type the decoder returns for its colour type and depth (a
// transparency chunk turns grey and RGB into NRGBA), and for an interlaced
// image its largest pass (every other row) as well.
func pngDecodeBytes(hdr []byte, transparent bool) int64 {
	w, h := int64(binary.BigEndian.Uint32(hdr[0:])), int64(binary.BigEndian.Uint32(hdr[4:]))
	depth, colour, interlaced := hdr[8], hdr[9], hdr[12] == 1
	sample := max(1, int64(depth)/8) // bytes: 8 bits and under decode to 1
	var perPixel int64
	switch {
	case colour == 3: // paletted
		perPixel = 1
	case colour == 0 && !transparent: // grey or grey16
		perPixel = sample
	default: // RGBA, RGBA64, NRGBA or NRGBA64: four samples
		perPixel = 4 * sample
	}
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
	total := perPixel*w*h + 2*(1+(channels*int64(depth)*w+7)/8) // and the current and previous rows
	if interlaced {
		total += perPixel * w * (h / 2)
	}
	return total + rgbBytes(int(w), int(h))
}
