// Package checkpoint reads and writes the ckpt checkpoint file format.
//
// A checkpoint file is self-describing and versioned:
//
//	offset      size  field
//	0           8     magic "CKPT\r\n\x1a\n"
//	8           4     format version, big-endian (currently 1)
//	12          4     header length H, big-endian (at most MaxHeaderSize)
//	16          H     header: a JSON object (see Header)
//	16+H        4     CRC-32C (Castagnoli) of bytes [0, 16+H)
//	20+H        N     payload: opaque bytes of any length
//	20+H+N      8     trailer magic "CKPTEND\n"
//	28+H+N      8     payload length N, big-endian
//	36+H+N      32    SHA-256 of every byte before it
//
// The header has its own CRC so that metadata can be read, and trusted, without
// reading the payload. The payload length sits in the trailer so that a payload
// can stream in from a pipe whose length nobody knows in advance. The trailing
// SHA-256 covers the whole file: a truncated file, a file with bytes appended
// and a file with any bit flipped all fail verification.
//
// Encoding and decoding stream in constant memory. A Reader hands out payload
// bytes as it reads them and reports corruption only at the end, so a caller
// that must never expose a corrupt byte (ckpt load) verifies first with Verify
// and then streams the payload section, relying on the file not changing in
// between: ckpt never modifies a checkpoint file in place, it only replaces it
// by rename.
//
// This package knows bytes and formats, nothing of files or directories.
package checkpoint
