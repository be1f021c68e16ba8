package checkpoint

import "bytes"

// EncodeManifest returns the format-2 manifest of h: the preamble with
// version 2, the JSON header and the CRC-32C of all before it. Nothing
// follows. h.Format is ignored. A header that does not pass Validate fails
// with an error wrapping ErrInvalid.
func EncodeManifest(h *Header) ([]byte, error) {
	return encodeHeader(h, Version)
}

// DecodeManifest decodes b, a whole object that is expected to be a
// manifest. A format-2 manifest must be exactly as long as its preamble
// says: bytes after its CRC are a *CorruptError. For a format-1 file it
// returns the header read from its start, with Format 1, and does not check
// the payload and trailer that follow (Verify does).
func DecodeManifest(b []byte) (*Header, error) {
	h, n, err := ReadHeader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if h.Format == 1 {
		return h, nil
	}
	if n != int64(len(b)) {
		return nil, corrupt("manifest has trailing data")
	}
	return h, nil
}
