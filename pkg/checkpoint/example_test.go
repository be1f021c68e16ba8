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

// Write a checkpoint, verify it, then read its payload. A single flipped bit
// in the payload makes Verify fail.
func Example() {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	h := &checkpoint.Header{
		Generation: 1,
		Saved:      created.Add(time.Hour),
		Created:    created,
		Title:      "first draft",
		Flags:      []string{"incomplete"},
		App:        "org.example.notes",
	}

	var file bytes.Buffer // in ckpt, a temporary file renamed into place
	w, err := checkpoint.NewWriter(&file, h)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.WriteString(w, "hello, checkpoint\n"); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// Verify before trusting a byte of the payload.
	b := file.Bytes()
	info, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("generation %d %q, saved %s, incomplete: %v\n",
		info.Header.Generation, info.Header.Title, info.Header.Saved.Format(time.RFC3339), info.Header.HasFlag("incomplete"))
	payload := io.NewSectionReader(bytes.NewReader(b), info.PayloadOffset, info.PayloadSize)
	if _, err := io.Copy(os.Stdout, payload); err != nil {
		log.Fatal(err)
	}

	b[info.PayloadOffset] ^= 0x04 // "hello" becomes "lello"
	_, err = checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
	var corrupt *checkpoint.CorruptError
	fmt.Println("after a bit flip:", errors.As(err, &corrupt), err)

	// Output:
	// generation 1 "first draft", saved 2024-01-02T04:04:05Z, incomplete: true
	// hello, checkpoint
	// after a bit flip: true corrupt checkpoint: checksum mismatch
}

// ReadHeader lists a checkpoint's metadata without reading its payload.
func ExampleReadHeader() {
	var file bytes.Buffer
	w, err := checkpoint.NewWriter(&file, &checkpoint.Header{
		Generation: 7,
		Title:      "weekly report",
		Flags:      []string{"submitted"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	h, off, err := checkpoint.ReadHeader(&file)
	if err != nil {
		log.Fatal(err)
	}
	payloadSize := int64(file.Len()) - checkpoint.TrailerSize // file.Len() is what ReadHeader left unread
	fmt.Printf("generation %d %q %v, payload of %d bytes at offset %d\n", h.Generation, h.Title, h.Flags, payloadSize, off)

	// Output:
	// generation 7 "weekly report" [submitted], payload of 1048576 bytes at offset 146
}
