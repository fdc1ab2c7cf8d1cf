package diskstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
)

// A record is one Put or Delete in a segment file (see the package doc):
//
//	offset  size  field
//	0       4     magic "eqs\x01" (the 1 is the format version)
//	4       4     CRC-32C (Castagnoli) of every byte after this field
//	8       1     op: 1 put, 2 delete
//	9       1     reserved, 0
//	10      2     key length
//	12      4     meta length
//	16      4     body length
//	20      -     key, meta, body
//
// Integers are little-endian. Meta is the content type and the metadata
// (see encodeMeta); a delete has neither meta nor body.
const (
	headerLen = 20
	crcStart  = 8 // the CRC covers the record from here on

	opPut    byte = 1
	opDelete byte = 2

	// MaxMetaLen bounds an object's encoded content type and metadata.
	MaxMetaLen = 64 << 10
	// MaxBodyLen is the largest object body a record can hold.
	MaxBodyLen int64 = 1<<32 - 1
)

var (
	magic    = [4]byte{'e', 'q', 's', 1}
	crcTable = crc32.MakeTable(crc32.Castagnoli)
)

// header is a record's fixed-size header, decoded.
type header struct {
	crc     uint32
	op      byte
	keyLen  int
	metaLen int
	bodyLen int64
}

// size is the length of the whole record.
func (h header) size() int64 { return headerLen + int64(h.keyLen) + int64(h.metaLen) + h.bodyLen }

// bodyAt is where the body starts within the record.
func (h header) bodyAt() int { return headerLen + h.keyLen + h.metaLen }

// encodeRecord encodes one record into a new buffer, ready for one write.
func encodeRecord(op byte, key string, meta, body []byte) []byte {
	rec := make([]byte, headerLen+len(key)+len(meta)+len(body))
	copy(rec, magic[:])
	rec[8] = op
	binary.LittleEndian.PutUint16(rec[10:], uint16(len(key)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(meta)))
	binary.LittleEndian.PutUint32(rec[16:], uint32(len(body)))
	n := headerLen
	n += copy(rec[n:], key)
	n += copy(rec[n:], meta)
	copy(rec[n:], body)
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[crcStart:], crcTable))
	return rec
}

// decodeHeader checks the magic, op and lengths of a record header.
func decodeHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, fmt.Errorf("record header: %d bytes, want %d", len(b), headerLen)
	}
	if [4]byte(b[:4]) != magic {
		return header{}, fmt.Errorf("record header: bad magic %q", b[:4])
	}
	h := header{
		crc:     binary.LittleEndian.Uint32(b[4:]),
		op:      b[8],
		keyLen:  int(binary.LittleEndian.Uint16(b[10:])),
		metaLen: int(binary.LittleEndian.Uint32(b[12:])),
		bodyLen: int64(binary.LittleEndian.Uint32(b[16:])),
	}
	switch {
	case h.op != opPut && h.op != opDelete:
		return header{}, fmt.Errorf("record header: unknown op %d", h.op)
	case b[9] != 0:
		return header{}, fmt.Errorf("record header: reserved byte %d", b[9])
	case h.keyLen == 0 || h.keyLen > MaxKeyLen:
		return header{}, fmt.Errorf("record header: key length %d", h.keyLen)
	case h.metaLen > MaxMetaLen:
		return header{}, fmt.Errorf("record header: meta length %d", h.metaLen)
	case h.op == opDelete && (h.metaLen != 0 || h.bodyLen != 0):
		return header{}, errors.New("record header: delete with meta or body")
	}
	return h, nil
}

// checkRecord verifies the CRC of a whole record whose header is h.
func checkRecord(h header, rec []byte) error {
	if int64(len(rec)) != h.size() {
		return fmt.Errorf("record: %d bytes, header says %d", len(rec), h.size())
	}
	if got := crc32.Checksum(rec[crcStart:], crcTable); got != h.crc {
		return fmt.Errorf("record: CRC-32C %08x, header says %08x", got, h.crc)
	}
	return nil
}

// parseRecord decodes and checks a whole record.
func parseRecord(rec []byte) (header, error) {
	h, err := decodeHeader(rec)
	if err != nil {
		return header{}, err
	}
	return h, checkRecord(h, rec)
}

// recordKey and recordMeta slice a record whose header is h.
func recordKey(h header, rec []byte) string { return string(rec[headerLen : headerLen+h.keyLen]) }

func recordMeta(h header, rec []byte) []byte {
	return rec[headerLen+h.keyLen : h.bodyAt()]
}

// encodeMeta encodes a content type and metadata compactly: uvarint
// lengths before each string, the pair count before the pairs, pairs in
// key order so equal metadata encodes equally.
func encodeMeta(contentType string, md map[string]string) ([]byte, error) {
	n := binary.MaxVarintLen64 * (2 + 2*len(md))
	n += len(contentType)
	for k, v := range md {
		n += len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = appendString(b, contentType)
	b = binary.AppendUvarint(b, uint64(len(md)))
	for _, k := range slices.Sorted(maps.Keys(md)) {
		b = appendString(appendString(b, k), md[k])
	}
	if len(b) > MaxMetaLen {
		return nil, fmt.Errorf("content type and metadata: %d bytes encoded, more than %d", len(b), MaxMetaLen)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeMeta decodes what encodeMeta made. Metadata without pairs is nil.
func decodeMeta(b []byte) (contentType string, md map[string]string, err error) {
	d := metaDecoder{b: b}
	contentType = d.string()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) { // each pair takes at least two bytes
		d.err = fmt.Errorf("%d metadata pairs in %d bytes", n, len(d.b))
	}
	if n > 0 && d.err == nil {
		md = make(map[string]string, n)
		for range n {
			k := d.string()
			md[k] = d.string()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the metadata", len(d.b))
	}
	if d.err != nil {
		return "", nil, fmt.Errorf("decode meta: %w", d.err)
	}
	return contentType, md, nil
}

// metaDecoder reads uvarints and strings and keeps the first error.
type metaDecoder struct {
	b   []byte
	err error
}

func (d *metaDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *metaDecoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("string of %d bytes, %d left", n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
