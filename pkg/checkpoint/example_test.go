package checkpoint_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Store a payload as an object of its own and a manifest that names it, then
// load it: decode the manifest, verify the payload object, and only then read
// it. A single flipped bit in the payload makes VerifyPayload fail.
func Example() {
	// Save: hash the payload while it is stored as an immutable object.
	var object bytes.Buffer // in ckpt, an object of the session
	sum := checkpoint.NewPayloadHash()
	n, err := io.Copy(io.MultiWriter(&object, sum), bytes.NewReader([]byte("hello, checkpoint\n")))
	if err != nil {
		log.Fatal(err)
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	manifest, err := checkpoint.EncodeManifest(&checkpoint.Header{
		Generation: 1,
		Saved:      created.Add(time.Hour),
		Created:    created,
		Title:      "first draft",
		Flags:      []string{"incomplete"},
		App:        "org.example.notes",
		Payload:    &checkpoint.Payload{Object: "payload-" + checkpoint.PayloadSum(sum)[:16], Size: n, SHA256: checkpoint.PayloadSum(sum)},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Load: the manifest checks itself; the payload is verified before a
	// byte of it is trusted.
	h, err := checkpoint.DecodeManifest(manifest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("format %d, generation %d %q, saved %s, incomplete: %v, payload %s\n",
		h.Format, h.Generation, h.Title, h.Saved.Format(time.RFC3339), h.HasFlag("incomplete"), h.Payload.Object)
	b := object.Bytes()
	if err := checkpoint.VerifyPayload(bytes.NewReader(b), int64(len(b)), h.Payload); err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stdout.Write(b); err != nil {
		log.Fatal(err)
	}

	b[0] ^= 0x04 // "hello" becomes "lello"
	err = checkpoint.VerifyPayload(bytes.NewReader(b), int64(len(b)), h.Payload)
	var corrupt *checkpoint.CorruptError
	fmt.Println("after a bit flip:", errors.As(err, &corrupt), err)

	// Output:
	// format 2, generation 1 "first draft", saved 2024-01-02T04:04:05Z, incomplete: true, payload payload-a1fdb77522c2312e
	// hello, checkpoint
	// after a bit flip: true corrupt checkpoint: payload payload-a1fdb77522c2312e: checksum mismatch
}

// HeaderLen tells a reader that fetched a short prefix of an object (a ranged
// GET) how much it needs for the whole header; ReadHeader then reads it, from
// a format-2 manifest or a format-1 file alike, without reading any payload.
func ExampleHeaderLen() {
	manifest, err := checkpoint.EncodeManifest(&checkpoint.Header{
		Generation: 7,
		Title:      "weekly report",
		Flags:      []string{"submitted"},
	})
	if err != nil {
		log.Fatal(err)
	}

	prefix := manifest[:16] // the first bytes a ranged read brought
	n, err := checkpoint.HeaderLen(prefix)
	if err != nil {
		log.Fatal(err)
	}
	h, off, err := checkpoint.ReadHeader(bytes.NewReader(manifest[:n]))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("format %d, generation %d %q %v, header of %d bytes, read %d\n", h.Format, h.Generation, h.Title, h.Flags, n, off)

	// Output:
	// format 2, generation 7 "weekly report" [submitted], header of 146 bytes, read 146
}
