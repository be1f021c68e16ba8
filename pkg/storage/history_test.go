package storage_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func TestKeepGenerations(t *testing.T) {
	tests := []struct {
		name  string
		opts  []storage.SaveOption
		saves int
		want  []uint64 // generations on disk, newest first
	}{
		{name: "default", saves: 5, want: []uint64{5, 4, 3}},
		{name: "keep 1", opts: []storage.SaveOption{storage.Keep(1)}, saves: 4, want: []uint64{4}},
		{name: "keep 2", opts: []storage.SaveOption{storage.Keep(2)}, saves: 4, want: []uint64{4, 3}},
		{name: "keep more than saved", opts: []storage.SaveOption{storage.Keep(10)}, saves: 3, want: []uint64{3, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newSession(t)
			for i := 1; i <= tt.saves; i++ {
				mustSave(t, d, payloadOf(uint64(i)), tt.opts...)
			}
			hist, err := d.History(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for i, g := range hist {
				got = append(got, g.Generation)
				if g.Err != nil || g.Current != (i == 0) || g.Header.Generation != g.Generation || g.Size != int64(len(payloadOf(g.Generation))) {
					t.Errorf("History[%d] = %+v", i, g)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("History: generations %v, want %v", got, tt.want)
			}
			for g := uint64(1); g <= uint64(tt.saves); g++ {
				cp, err := d.Load(t.Context(), storage.AtGeneration(g))
				if !slices.Contains(tt.want, g) {
					if !errors.Is(err, storage.ErrNoGeneration) || cp != nil {
						t.Errorf("Load(AtGeneration(%d)) = %v, %v; want ErrNoGeneration", g, cp, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Load(AtGeneration(%d)): %v", g, err)
					continue
				}
				b, _ := readAllClose(cp)
				if cp.Header.Generation != g || b != payloadOf(g) {
					t.Errorf("Load(AtGeneration(%d)) = generation %d, %q", g, cp.Header.Generation, b)
				}
			}
			if cp, err := d.Load(t.Context(), storage.AtGeneration(0)); !errors.Is(err, storage.ErrNoGeneration) || cp != nil {
				t.Errorf("Load(AtGeneration(0)) = %v, %v; want ErrNoGeneration", cp, err)
			}
			wantPerms(t, d)
			wantNoNext(t, d)
		})
	}
}

func payloadOf(gen uint64) string { return strings.Repeat(string(rune('a'+gen%26)), int(gen)*10) }

func readAllClose(cp *storage.Checkpoint) (string, error) {
	defer cp.Close()
	b, err := io.ReadAll(cp)
	return string(b), err
}

func TestKeepPayload(t *testing.T) {
	d := newSession(t, storage.WithTitle("run"))
	mustSave(t, d, "state")
	saved, err := d.Save(t.Context(), strings.NewReader("ignored"), storage.KeepPayload(),
		storage.WithFlags([]string{"submitted"}, nil), storage.IfGeneration(1))
	if err != nil {
		t.Fatalf("Save(KeepPayload): %v", err)
	}
	if saved.Header.Generation != 2 || saved.Size != int64(len("state")) {
		t.Errorf("Save(KeepPayload) = generation %d, size %d", saved.Header.Generation, saved.Size)
	}
	cp, got := mustLoad(t, d)
	if got != "state" || cp.Header.Generation != 2 || !cp.Header.HasFlag("submitted") || cp.Header.Title != "run" {
		t.Errorf("Load = %q, %+v; want the old payload with the new flag", got, cp.Header)
	}

	// A metadata-only save refuses to copy a damaged payload forward.
	corrupt(t, d, func(b []byte, off int) []byte { b[off] ^= 1; return b })
	_, err = d.Save(t.Context(), nil, storage.KeepPayload(), storage.WithFlags(nil, []string{"submitted"}))
	var ce *checkpoint.CorruptError
	if !errors.As(err, &ce) {
		t.Errorf("Save(KeepPayload) of a damaged checkpoint: error = %v, want a *checkpoint.CorruptError", err)
	}
	wantNoNext(t, d)
}

// On a session never saved there is no payload to keep: the payload
// argument is ignored, and the new generation still has no checkpoint to
// load (NoPayload), so that a resume script's "load, else start afresh"
// keeps working after a step record or a flag change.
func TestKeepPayloadGenerationZero(t *testing.T) {
	d := newSession(t)
	saved, err := d.Save(t.Context(), strings.NewReader("ignored"), storage.KeepPayload(), storage.WithFlags([]string{"x"}, nil))
	if err != nil {
		t.Fatalf("Save(KeepPayload) on generation 0: %v", err)
	}
	if saved.Size != 0 || saved.Header.Generation != 1 || !saved.Header.NoPayload || !saved.Header.HasFlag("x") {
		t.Errorf("Save(KeepPayload) on generation 0 saved %+v, size %d", saved.Header, saved.Size)
	}
	if _, err := d.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) {
		t.Errorf("Load after a metadata-only save: %v, want ErrNoCheckpoint", err)
	}
	mustSave(t, d, "real")
	saved, err = d.Save(t.Context(), nil, storage.KeepPayload())
	if err != nil || saved.Header.NoPayload {
		t.Fatalf("KeepPayload after a real save: %v, NoPayload %v", err, saved != nil && saved.Header.NoPayload)
	}
	wantLoad(t, d, 3, "real")
}

func TestInitTwice(t *testing.T) {
	d := newSession(t, storage.WithTitle("first"))
	if _, err := storage.Init(t.Context(), d.Path(), storage.WithTitle("second")); err == nil {
		t.Error("a second Init succeeded")
	}
	st, err := d.Stat(t.Context())
	if err != nil || st.Header.Title != "first" || st.Header.Generation != 0 {
		t.Errorf("Stat = %+v, %v; want the first Init's generation 0", st, err)
	}
	wantNoNext(t, d)
	if _, err := storage.Init(t.Context(), filepath.Join(t.TempDir(), "missing")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Init of a missing directory: error = %v, want ErrNotFound", err)
	}
}

func TestInvalidMetadata(t *testing.T) {
	tests := []struct {
		name string
		opt  storage.SaveOption
	}{
		{"flag with a space", storage.WithFlags([]string{"bad flag"}, nil)},
		{"upper-case flag", storage.WithFlags([]string{"Bad"}, nil)},
		{"title too long", storage.WithTitle(strings.Repeat("t", checkpoint.MaxTitleLen+1))},
		{"title not UTF-8", storage.WithTitle("\xff")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := storage.Init(t.Context(), newDir(t), tt.opt); !errors.Is(err, checkpoint.ErrInvalid) {
				t.Errorf("Init: error = %v, want checkpoint.ErrInvalid", err)
			}
			d := newSession(t)
			mustSave(t, d, "good")
			if _, err := d.Save(t.Context(), strings.NewReader("new"), tt.opt); !errors.Is(err, checkpoint.ErrInvalid) {
				t.Errorf("Save: error = %v, want checkpoint.ErrInvalid", err)
			}
			wantLoad(t, d, 1, "good")
			wantNoNext(t, d)
		})
	}
}

// A writer whose lock was broken with force must notice before it rotates
// history, or it would replace the kept copy of the generation it started
// from with the checkpoint the new lock holder committed.
func TestBrokenWriterKeepsHistory(t *testing.T) {
	d := newSession(t)
	mustSave(t, d, "before")
	r := &hookReader{
		chunks: []string{"first ", "writer"},
		hook: map[int]func() error{1: func() error {
			if _, err := d.BreakLock(t.Context(), true); err != nil {
				return err
			}
			_, err := d.Save(t.Context(), strings.NewReader("other"))
			return err
		}},
	}
	_, err := d.Save(t.Context(), r)
	lockedError(t, "the broken writer's Save", err)
	wantLoad(t, d, 2, "other")

	cp, err := d.Load(t.Context(), storage.AtGeneration(1))
	if err != nil {
		t.Fatalf("Load(AtGeneration(1)): %v", err)
	}
	got, _ := readAllClose(cp)
	if cp.Header.Generation != 1 || got != "before" {
		t.Errorf("Load(AtGeneration(1)) = generation %d, %q; want generation 1, \"before\"", cp.Header.Generation, got)
	}
	fi1, err1 := os.Stat(filepath.Join(d.Path(), "session.1"))
	fi2, err2 := os.Stat(filepath.Join(d.Path(), storage.CheckpointFile))
	if err1 == nil && err2 == nil && os.SameFile(fi1, fi2) {
		t.Error("session.1 is a hard link to the current checkpoint")
	}
}
