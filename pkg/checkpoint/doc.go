// Package checkpoint reads and writes the ckpt checkpoint format.
//
// It writes format version 2 and reads versions 1 and 2: every checkpoint a
// format-1 ckpt saved stays readable, and the next save writes it anew in
// format 2.
//
// # Format 2: a manifest and a payload object
//
// A generation's metadata lives apart from its payload. The generation is a
// small manifest, written by EncodeManifest:
//
//	offset      size  field
//	0           8     magic "CKPT\r\n\x1a\n"
//	8           4     format version, big-endian: 2
//	12          4     header length H, big-endian (at most MaxHeaderSize)
//	16          H     header: a JSON object (see Header)
//	16+H        4     CRC-32C (Castagnoli) of bytes [0, 16+H)
//
// Nothing follows: a manifest is exactly 20+H bytes long, and DecodeManifest
// refuses one with bytes after its CRC. The header's "payload" member names
// the payload, an object of the same session that holds the opaque payload
// bytes and nothing else (see Payload):
//
//	"payload": {
//	  "object": "payload-3f2a…",  // the object's name, within the rules of ValidName
//	  "size":   18,               // its length in bytes
//	  "sha256": "a1fdb775…"       // SHA-256 of its bytes, 64 lowercase hex digits
//	}
//
// The header's "kept" member lists the older generations the session keeps
// as history, newest first, each with the payload object its manifest names
// ("" for a format-1 file, whose payload is inside it):
//
//	"kept": [{"generation": 7, "payload": "payload-9c1e…"}, …]
//
// It makes the current manifest the root of everything the session keeps:
// an object neither it nor a kept generation names is garbage.
//
// A generation without a payload (generation 0, or NoPayload) has no
// "payload" member. Payload objects are immutable, so generations that share
// a payload share its bytes, and a change of metadata (a title, a flag, a
// step) writes a new manifest without reading, hashing or copying the
// payload.
//
// Each part carries its own check. The CRC-32C covers the metadata: ReadHeader
// and DecodeManifest check it on every read, so a listing can trust a header
// without touching the payload. The SHA-256 in the manifest covers the
// payload end to end, and the manifest's CRC covers that SHA-256. This
// package does not read objects: the storage layer checks a payload object
// with VerifyPayload, which reads it in constant memory, before it hands out
// the first byte of it, and relies on the object not changing afterwards.
//
// A reader that fetches a short prefix of a manifest (a ranged GET) learns
// from its first 16 bytes, through HeaderLen, how many bytes the whole
// manifest takes.
//
// # Format 1: one file with the payload inline
//
// Format 1 put the payload between the header and a trailer:
//
//	offset      size  field
//	0           8     magic "CKPT\r\n\x1a\n"
//	8           4     format version, big-endian: 1
//	12          4     header length H, big-endian (at most MaxHeaderSize)
//	16          H     header: a JSON object (see Header), without "payload"
//	16+H        4     CRC-32C (Castagnoli) of bytes [0, 16+H)
//	20+H        N     payload: opaque bytes of any length
//	20+H+N      8     trailer magic "CKPTEND\n"
//	28+H+N      8     payload length N, big-endian
//	36+H+N      32    SHA-256 of every byte before it
//
// The header has its own CRC so that metadata can be read, and trusted, without
// reading the payload. The payload length sits in the trailer so that a payload
// could stream in from a pipe whose length nobody knew in advance. The trailing
// SHA-256 covers the whole file: a truncated file, a file with bytes appended
// and a file with any bit flipped all fail verification.
//
// This package no longer writes format 1; it reads it. ReadHeader and
// DecodeManifest read the header of either format and set Header.Format.
// Verify checks a whole format-1 file and Reader streams its payload, in
// constant memory; a Reader hands out payload bytes as it reads them and
// reports corruption only at the end, so a caller that must never expose a
// corrupt byte (ckpt load) verifies first with Verify and then reads the
// payload section. Verify and NewReader are for format 1 only: given an
// intact format-2 manifest they return ErrManifest.
//
// # Errors
//
// Damaged data is a *CorruptError, a format version this package does not
// read is a *VersionError, and a header that cannot be written is an error
// wrapping ErrInvalid. An I/O error of the underlying reader is returned as it
// is.
//
// This package knows bytes and formats, nothing of files, objects or
// directories.
package checkpoint
