package web

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Why a structural check rather than a full decode: image.DecodeConfig has
// already parsed the header (so the format, coding and dimensions are ones
// Go can decode), and what is left to rule out is a file that is not whole,
// above all a truncated one. Walking the container does that in one linear
// pass over bytes already in memory, without allocating pixels: a full decode
// of the 64×64 CSE546 faces was a third of the web tier's CPU per request,
// and of a 10 MiB upload declaring 50 megapixels would take about a second
// of CPU and up to 400 MB, which a burst of such uploads would turn into a
// denial of service. For PNG the check is as strong as a decode at catching
// damage, since every chunk's CRC-32 is verified; for JPEG it proves every
// segment is whole and the file ends with its EOI marker, but not that the
// entropy-coded bits inside a scan are valid (neither does Go's decoder,
// which decodes most bit flips into wrong pixels). Damage of that kind makes
// the classifier fail, and the client gets that failure as the result.

// errIncomplete marks a file that ends before its structure does.
var errIncomplete = errors.New("file ends early (truncated?)")

// checkWhole checks that b, whose header image.DecodeConfig accepted as
// format ("jpeg" or "png"), is a complete, well-formed file.
func checkWhole(format string, b []byte) error {
	switch format {
	case "jpeg":
		return checkJPEG(b)
	case "png":
		return checkPNG(b)
	}
	return fmt.Errorf("format %q: not checked", format)
}

// JPEG markers (ITU T.81, table B.1).
const (
	markerTEM  = 0x01
	markerRST0 = 0xd0
	markerRST7 = 0xd7
	markerSOI  = 0xd8
	markerEOI  = 0xd9
	markerSOS  = 0xda
	markerSOF0 = 0xc0
	markerSOFF = 0xcf
	markerDHT  = 0xc4
	markerJPG  = 0xc8
	markerDAC  = 0xcc
)

// checkJPEG walks the marker segments from SOI to EOI, skipping over each
// scan's entropy-coded data, and requires a frame header and at least one
// scan before EOI. Bytes after EOI are ignored, as decoders do.
func checkJPEG(b []byte) error {
	if len(b) < 2 || b[0] != 0xff || b[1] != markerSOI {
		return errors.New("jpeg: no SOI marker")
	}
	var sawFrame, sawScan bool
	i := 2
	for {
		if i >= len(b) {
			return fmt.Errorf("jpeg: %w", errIncomplete)
		}
		if b[i] != 0xff {
			return fmt.Errorf("jpeg: byte %#02x at offset %d, want a marker", b[i], i)
		}
		for i < len(b) && b[i] == 0xff { // a marker may follow fill bytes
			i++
		}
		if i >= len(b) {
			return fmt.Errorf("jpeg: %w", errIncomplete)
		}
		m := b[i]
		i++
		switch {
		case m == markerEOI:
			if !sawScan {
				return errors.New("jpeg: EOI before any scan")
			}
			return nil
		case m == markerTEM || (m >= markerRST0 && m <= markerRST7):
			// No length. A stray restart marker after the last scan is a
			// common encoder bug that decoders ignore.
			continue
		case m == markerSOI || m == 0x00:
			return fmt.Errorf("jpeg: unexpected marker %#02x at offset %d", m, i-1)
		}
		if i+2 > len(b) {
			return fmt.Errorf("jpeg: %w", errIncomplete)
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if n < 2 {
			return fmt.Errorf("jpeg: segment %#02x at offset %d has length %d", m, i-1, n)
		}
		if i+n > len(b) {
			return fmt.Errorf("jpeg: %w", errIncomplete)
		}
		i += n
		switch {
		case m >= markerSOF0 && m <= markerSOFF && m != markerDHT && m != markerJPG && m != markerDAC:
			sawFrame = true
		case m == markerSOS:
			if !sawFrame {
				return errors.New("jpeg: scan before the frame header")
			}
			sawScan = true
			var err error
			if i, err = skipEntropyData(b, i); err != nil {
				return err
			}
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
			return 0, fmt.Errorf("jpeg: scan data: %w", errIncomplete)
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
// length and CRC-32, and requires IHDR first, an IDAT, and IEND. Bytes after
// IEND are ignored, as decoders do.
func checkPNG(b []byte) error {
	const sig = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(b, []byte(sig)) {
		return errors.New("png: no signature")
	}
	var sawData bool
	for i, first := len(sig), true; ; first = false {
		if i+12 > len(b) { // length, type, CRC
			return fmt.Errorf("png: %w", errIncomplete)
		}
		n := binary.BigEndian.Uint32(b[i:])
		typ := string(b[i+4 : i+8])
		if uint64(n) > uint64(len(b)-i-12) {
			return fmt.Errorf("png: chunk %q: %w", typ, errIncomplete)
		}
		end := i + 8 + int(n)
		if crc32.ChecksumIEEE(b[i+4:end]) != binary.BigEndian.Uint32(b[end:]) {
			return fmt.Errorf("png: chunk %q at offset %d: checksum mismatch", typ, i)
		}
		switch {
		case first && typ != "IHDR":
			return fmt.Errorf("png: first chunk %q, want IHDR", typ)
		case typ == "IDAT":
			sawData = true
		case typ == "IEND":
			if !sawData {
				return errors.New("png: no IDAT chunk")
			}
			return nil
		}
		i = end + 4
	}
}
