package checkpoint_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

func manyFlags(n int) []string {
	f := make([]string, n)
	for i := range f {
		f[i] = fmt.Sprintf("f%03d", i)
	}
	return f
}

// TestEncodeRejectsInvalidHeader checks that EncodeManifest, and the
// V1Writer, refuse a header that does not validate.
func TestEncodeRejectsInvalidHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*checkpoint.Header)
	}{
		{"upper-case flag", func(h *checkpoint.Header) { h.Flags = []string{"Done"} }},
		{"empty flag", func(h *checkpoint.Header) { h.Flags = []string{""} }},
		{"flag too long", func(h *checkpoint.Header) { h.Flags = []string{strings.Repeat("a", checkpoint.MaxFlagLen+1)} }},
		{"flag with a space", func(h *checkpoint.Header) { h.Flags = []string{"not done"} }},
		{"flag starting with '-'", func(h *checkpoint.Header) { h.Flags = []string{"-x"} }},
		{"flag starting with '.'", func(h *checkpoint.Header) { h.Flags = []string{".x"} }},
		{"non-ASCII flag", func(h *checkpoint.Header) { h.Flags = []string{"fertig-ü"} }},
		{"flag with a newline", func(h *checkpoint.Header) { h.Flags = []string{"a\n"} }},
		{"unsorted flags", func(h *checkpoint.Header) { h.Flags = []string{"submitted", "incomplete"} }},
		{"duplicate flags", func(h *checkpoint.Header) { h.Flags = []string{"incomplete", "incomplete"} }},
		{"duplicate flags apart", func(h *checkpoint.Header) { h.Flags = []string{"a", "b", "b", "c"} }},
		{"too many flags", func(h *checkpoint.Header) { h.Flags = manyFlags(checkpoint.MaxFlags + 1) }},
		{"title too long", func(h *checkpoint.Header) { h.Title = strings.Repeat("t", checkpoint.MaxTitleLen+1) }},
		{"title too long in bytes, not runes", func(h *checkpoint.Header) { h.Title = strings.Repeat("ü", checkpoint.MaxTitleLen/2+1) }},
		{"title not UTF-8", func(h *checkpoint.Header) { h.Title = "caf\xe9" }},
		{"title with a cut rune", func(h *checkpoint.Header) { h.Title = "日本語"[:4] }},
		{"app too long", func(h *checkpoint.Header) { h.App = strings.Repeat("a", checkpoint.MaxAppLen+1) }},
		{"app not UTF-8", func(h *checkpoint.Header) { h.App = "\xff\xfe" }},
		{"payload without an object name", func(h *checkpoint.Header) { h.Payload.Object = "" }},
		{"payload object name with a path", func(h *checkpoint.Header) { h.Payload.Object = "../session" }},
		{"payload object name starting with '.'", func(h *checkpoint.Header) { h.Payload.Object = ".payload" }},
		{"payload object name in upper case", func(h *checkpoint.Header) { h.Payload.Object = "Payload-1" }},
		{"payload object name too long", func(h *checkpoint.Header) { h.Payload.Object = strings.Repeat("p", checkpoint.MaxNameLen+1) }},
		{"negative payload size", func(h *checkpoint.Header) { h.Payload.Size = -1 }},
		{"no payload SHA-256", func(h *checkpoint.Header) { h.Payload.SHA256 = "" }},
		{"payload SHA-256 too short", func(h *checkpoint.Header) { h.Payload.SHA256 = h.Payload.SHA256[:63] }},
		{"payload SHA-256 too long", func(h *checkpoint.Header) { h.Payload.SHA256 += "0" }},
		{"payload SHA-256 in upper case", func(h *checkpoint.Header) { h.Payload.SHA256 = strings.ToUpper(h.Payload.SHA256) }},
		{"payload SHA-256 not hex", func(h *checkpoint.Header) { h.Payload.SHA256 = "g" + h.Payload.SHA256[1:] }},
		{"payload and no_payload", func(h *checkpoint.Header) { h.NoPayload = true }},
		{"kept payload object name with a path", func(h *checkpoint.Header) { h.Kept[0].Payload = "../session" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fullManifest()
			tc.modify(h)
			if err := h.Validate(); err == nil {
				t.Error("Validate accepted the header")
			}
			b, err := checkpoint.EncodeManifest(h)
			if !errors.Is(err, checkpoint.ErrInvalid) || b != nil {
				t.Errorf("EncodeManifest = %d bytes, %v; want an error wrapping ErrInvalid", len(b), err)
			}
			var buf bytes.Buffer
			w, err := checkpoint.NewV1Writer(&buf, h)
			if !errors.Is(err, checkpoint.ErrInvalid) {
				t.Errorf("NewV1Writer: error %v, want one wrapping ErrInvalid", err)
			}
			if w != nil {
				t.Error("NewV1Writer returned a V1Writer along with its error")
			}
			if buf.Len() != 0 {
				t.Errorf("NewV1Writer wrote %d bytes for a header it rejected", buf.Len())
			}
		})
	}

	// Format 1 has no payload objects: a valid Payload is refused there.
	_, err := checkpoint.NewV1Writer(new(bytes.Buffer), fullManifest())
	if !errors.Is(err, checkpoint.ErrInvalid) {
		t.Errorf("NewV1Writer of a header with a Payload: %v, want an error wrapping ErrInvalid", err)
	}
}

func TestValidateLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*checkpoint.Header)
	}{
		{"no flags", func(h *checkpoint.Header) { h.Flags = nil }},
		{"empty flag list", func(h *checkpoint.Header) { h.Flags = []string{} }},
		{"flag of MaxFlagLen", func(h *checkpoint.Header) { h.Flags = []string{strings.Repeat("z", checkpoint.MaxFlagLen)} }},
		{"MaxFlags flags", func(h *checkpoint.Header) { h.Flags = manyFlags(checkpoint.MaxFlags) }},
		{"every flag character", func(h *checkpoint.Header) { h.Flags = []string{"0", "9a_b.c-d", "a"} }},
		{"title of MaxTitleLen bytes", func(h *checkpoint.Header) { h.Title = strings.Repeat("ü", checkpoint.MaxTitleLen/2) }},
		{"app of MaxAppLen bytes", func(h *checkpoint.Header) { h.App = strings.Repeat("a", checkpoint.MaxAppLen) }},
		{"empty text", func(h *checkpoint.Header) { h.Title, h.App = "", "" }},
		{"no owner", func(h *checkpoint.Header) { h.Owner = nil }},
		{"zero times", func(h *checkpoint.Header) { h.Saved, h.Created = time.Time{}, time.Time{} }},
		{"largest generation", func(h *checkpoint.Header) { h.Generation = 1<<64 - 1 }},
		{"empty payload", func(h *checkpoint.Header) { h.Payload = payloadRef(nil) }},
		{"largest payload", func(h *checkpoint.Header) { h.Payload.Size = 1<<63 - 1 }},
		{"payload object name of MaxNameLen", func(h *checkpoint.Header) { h.Payload.Object = strings.Repeat("p", checkpoint.MaxNameLen) }},
		{"every payload object name character", func(h *checkpoint.Header) { h.Payload.Object = "_az09.-" }},
		{"no payload", func(h *checkpoint.Header) { h.Payload = nil }},
		{"no payload, no_payload", func(h *checkpoint.Header) { h.Payload, h.NoPayload = nil, true }},
		{"no kept generations", func(h *checkpoint.Header) { h.Kept = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fullManifest()
			tc.modify(h)
			if err := h.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := checkpoint.DecodeManifest(encodeManifest(t, h))
			if err != nil {
				t.Fatalf("DecodeManifest: %v", err)
			}
			if d := headerDiff(h, got); d != "" {
				t.Error(d)
			}
			if h.Payload != nil {
				return // format 1 cannot store it
			}
			file := encode(t, h, []byte("x"))
			info, err := checkpoint.Verify(bytes.NewReader(file), int64(len(file)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if d := headerDiff(h, info.Header); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestValidFlag(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want bool
	}{
		{"incomplete", true},
		{"submitted", true},
		{"a", true},
		{"0", true},
		{"v1.2", true},
		{"needs_review", true},
		{"draft-2", true},
		{"a.", true},
		{"a-", true},
		{strings.Repeat("x", checkpoint.MaxFlagLen), true},
		{strings.Repeat("x", checkpoint.MaxFlagLen+1), false},
		{"", false},
		{"Incomplete", false},
		{"INCOMPLETE", false},
		{"-a", false},
		{"_a", false},
		{".a", false},
		{"a b", false},
		{"a\tb", false},
		{"a\n", false},
		{"a/b", false},
		{"a,b", false},
		{"ü", false},
		{"a\x00", false},
	} {
		if got := checkpoint.ValidFlag(tc.flag); got != tc.want {
			t.Errorf("ValidFlag(%q) = %v, want %v", tc.flag, got, tc.want)
		}
	}
}

// TestNameRules checks ValidName, ValidFlag and the payload's SHA-256 check,
// written as byte loops, against the regexps they replaced (and the length
// limits): on every string of up to three bytes from an alphabet of each
// class's edges, on strings at the length limits and on SHA-256-long ones.
func TestNameRules(t *testing.T) {
	nameRE := regexp.MustCompile(`^[a-z0-9_-][a-z0-9._-]*$`)
	flagRE := regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	sha256RE := regexp.MustCompile(`^[0-9a-f]{64}$`)
	validSHA256 := func(s string) bool {
		h := checkpoint.Header{Payload: &checkpoint.Payload{Object: "payload-1", SHA256: s}}
		return h.Validate() == nil
	}
	const alphabet = "az09fg-_./A\n\x00\x80"
	strs := []string{""}
	for range 3 {
		for _, s := range strs {
			if len(s) < 3 {
				for i := range len(alphabet) {
					strs = append(strs, s+alphabet[i:i+1])
				}
			}
		}
		strs = slices.Compact(slices.Sorted(slices.Values(strs)))
	}
	hex := strings.Repeat("0123456789abcdef", 4)
	for i := range len(alphabet) {
		strs = append(strs, hex[:63]+alphabet[i:i+1], alphabet[i:i+1]+hex[1:])
	}
	strs = append(strs, hex, hex+"0", hex[:63], strings.ToUpper(hex), hex+"\n")
	for _, n := range []int{checkpoint.MaxFlagLen, checkpoint.MaxNameLen} {
		strs = append(strs, strings.Repeat("a", n), strings.Repeat("a", n+1))
	}
	for _, s := range strs {
		if got, want := checkpoint.ValidName(s), len(s) <= checkpoint.MaxNameLen && nameRE.MatchString(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
		if got, want := checkpoint.ValidFlag(s), len(s) <= checkpoint.MaxFlagLen && flagRE.MatchString(s); got != want {
			t.Errorf("ValidFlag(%q) = %v, want %v", s, got, want)
		}
		if got, want := validSHA256(s), sha256RE.MatchString(s); got != want {
			t.Errorf("SHA-256 %q valid = %v, want %v", s, got, want)
		}
	}
}

func TestHasFlag(t *testing.T) {
	h := &checkpoint.Header{Flags: []string{"a", "incomplete", "submitted", "z"}}
	for _, f := range h.Flags {
		if !h.HasFlag(f) {
			t.Errorf("HasFlag(%q) = false", f)
		}
	}
	for _, f := range []string{"", "b", "incomplet", "incompletes", "Incomplete", "zz"} {
		if h.HasFlag(f) {
			t.Errorf("HasFlag(%q) = true", f)
		}
	}
	if (&checkpoint.Header{}).HasFlag("a") {
		t.Error("HasFlag on a header without flags = true")
	}
}

func TestSetFlags(t *testing.T) {
	for _, tc := range []struct {
		name        string
		flags       []string
		add, remove []string
		want        []string
	}{
		{"nothing", nil, nil, nil, nil},
		{"add to none", nil, []string{"b", "a"}, nil, []string{"a", "b"}},
		{"add sorts", []string{"m"}, []string{"z", "a"}, nil, []string{"a", "m", "z"}},
		{"add dedupes", []string{"a", "b"}, []string{"b", "a", "b"}, nil, []string{"a", "b"}},
		{"remove", []string{"a", "b", "c"}, nil, []string{"b"}, []string{"a", "c"}},
		{"remove absent", []string{"a"}, nil, []string{"x"}, []string{"a"}},
		{"set and clear", []string{"incomplete"}, []string{"submitted"}, []string{"incomplete"}, []string{"submitted"}},
		{"in both lists ends cleared", []string{"a"}, []string{"b"}, []string{"b"}, []string{"a"}},
		{"remove all is nil", []string{"a", "b"}, nil, []string{"b", "a"}, nil},
		{"add and remove the same is nil", nil, []string{"a"}, []string{"a"}, nil},
		{"empty is nil", []string{}, []string{}, []string{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &checkpoint.Header{Flags: slices.Clone(tc.flags)}
			got := h.SetFlags(tc.add, tc.remove)
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("SetFlags(%q, %q) on %q = %#v, want %#v", tc.add, tc.remove, tc.flags, got, tc.want)
			}
			if !slices.Equal(h.Flags, tc.flags) {
				t.Errorf("SetFlags changed h.Flags to %q", h.Flags)
			}
			if got != nil {
				h.Flags = got
				if err := h.Validate(); err != nil {
					t.Errorf("the result does not validate: %v", err)
				}
			}
		})
	}

	// The result must not share memory with h.Flags, even when h.Flags has
	// room to grow.
	flags := make([]string, 1, 8)
	flags[0] = "m"
	h := &checkpoint.Header{Flags: flags}
	got := h.SetFlags([]string{"a"}, nil)
	got[0] = "changed"
	if flags[:2][1] != "" || flags[0] != "m" {
		t.Errorf("SetFlags wrote into the backing array of h.Flags: %q", flags[:2])
	}
}

func TestOwnerString(t *testing.T) {
	started := time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))
	for _, tc := range []struct {
		owner *checkpoint.Owner
		want  string
	}{
		{nil, "an unknown process"},
		{&checkpoint.Owner{PID: 42, Host: "box"}, "pid 42 on box"},
		{&checkpoint.Owner{PID: 42, Host: "box", Command: "ckpt save"}, "pid 42 on box (ckpt save)"},
		{&checkpoint.Owner{PID: 42, Host: "box", Started: started}, "pid 42 on box since 2025-01-02T02:04:05Z"},
		{&checkpoint.Owner{PID: 7, Host: "h", User: "u", Command: "c", Started: started}, "pid 7 on h (c) since 2025-01-02T02:04:05Z"},
	} {
		if got := tc.owner.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// TestHeaderJSON decodes header bytes that the encoders would never produce,
// framed with correct checksums so that only the header decides: as a
// format-1 file and as a format-2 manifest.
func TestHeaderJSON(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	sum := strings.Repeat("0123456789abcdef", 4)
	ref := func(js string) string {
		return `{"payload":{` + js + `}}`
	}
	for _, tc := range []struct {
		js string
		// want is nil if the header must be rejected as corrupt. Format 1
		// must reject a header with a Payload.
		want *checkpoint.Header
	}{
		{`{}`, &checkpoint.Header{}},
		{" {\n\t\"generation\" : 2 }\n", &checkpoint.Header{Generation: 2}},
		{`{"created":"2024-01-02T03:04:05Z","generation":9}`, &checkpoint.Header{Generation: 9, Created: ts}},
		{`{"saved":"2024-01-02T05:04:05+02:00"}`, &checkpoint.Header{Saved: ts}},
		{`{"title":"caf\u00e9 \ud83d\ude80"}`, &checkpoint.Header{Title: "café 🚀"}},
		{`{"flags":[],"owner":null,"title":""}`, &checkpoint.Header{}},
		{`{"owner":{"pid":5,"host":"h"}}`, &checkpoint.Header{Owner: &checkpoint.Owner{PID: 5, Host: "h"}}},

		{``, nil},
		{` `, nil},
		{`{`, nil},
		{`[]`, nil},
		{`"header"`, nil},
		{`{"generation":1} {"generation":2}`, nil},
		{`{"generation":1},`, nil},
		{`{"unknown":true}`, nil},
		{`{"owner":{"pid":1,"shell":"sh"}}`, nil},
		{`{"generation":-1}`, nil},
		{`{"generation":1.5}`, nil},
		{`{"generation":"1"}`, nil},
		{`{"generation":18446744073709551616}`, nil},
		{`{"saved":"yesterday"}`, nil},
		{`{"saved":"2024-01-02T03:04:05+25:00"}`, nil},
		{`{"flags":["b","a"]}`, nil},
		{`{"flags":["a","a"]}`, nil},
		{`{"flags":["Done"]}`, nil},
		{`{"flags":"a"}`, nil},
		{`{"title":"` + strings.Repeat("t", checkpoint.MaxTitleLen+1) + `"}`, nil},
		{`{"app":"` + strings.Repeat("a", checkpoint.MaxAppLen+1) + `"}`, nil},

		{`{"payload":null}`, &checkpoint.Header{}},
		{ref(`"object":"payload-1","size":7,"sha256":"` + sum + `"`), &checkpoint.Header{Payload: &checkpoint.Payload{Object: "payload-1", Size: 7, SHA256: sum}}},
		{ref(`"sha256":"` + sum + `","size":0,"object":"p"`), &checkpoint.Header{Payload: &checkpoint.Payload{Object: "p", SHA256: sum}}},
		{ref(`"object":"p","size":7,"sha256":"` + sum + `","url":"x"`), nil},
		{ref(`"object":"p","size":7`), nil},
		{ref(`"size":7,"sha256":"` + sum + `"`), nil},
		{ref(`"object":"../p","size":7,"sha256":"` + sum + `"`), nil},
		{ref(`"object":"p","size":-7,"sha256":"` + sum + `"`), nil},
		{ref(`"object":"p","size":"7","sha256":"` + sum + `"`), nil},
		{ref(`"object":"p","size":9223372036854775808,"sha256":"` + sum + `"`), nil},
		{ref(`"object":"p","size":7,"sha256":"` + strings.ToUpper(sum) + `"`), nil},
		{ref(`"object":"p","size":7,"sha256":"` + sum[1:] + `"`), nil},
		{`{"no_payload":true,"payload":{"object":"p","size":7,"sha256":"` + sum + `"}}`, nil},
		{`{"payload":"payload-1"}`, nil},
		{`{"payload":{}}`, nil},
		{`{"format":2}`, nil},
	} {
		name := tc.js
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			file := specEncode(1, []byte(tc.js), []byte("p"))
			info, err := checkpoint.Verify(bytes.NewReader(file), int64(len(file)))
			_, _, herr := checkpoint.ReadHeader(bytes.NewReader(file))
			switch {
			case tc.want == nil || tc.want.Payload != nil:
				checkCorrupt(t, "Verify", err)
				checkCorrupt(t, "ReadHeader", herr)
			case err != nil || herr != nil:
				t.Errorf("Verify: %v; ReadHeader: %v", err, herr)
			default:
				if d := headerDiff(tc.want, info.Header); d != "" {
					t.Errorf("format 1: %s", d)
				}
			}

			m := specManifest(2, []byte(tc.js))
			h, err := checkpoint.DecodeManifest(m)
			_, _, herr = checkpoint.ReadHeader(bytes.NewReader(m))
			switch {
			case tc.want == nil:
				checkCorrupt(t, "DecodeManifest", err)
				checkCorrupt(t, "ReadHeader of the manifest", herr)
			case err != nil || herr != nil:
				t.Errorf("DecodeManifest: %v; ReadHeader: %v", err, herr)
			default:
				if d := headerDiff(tc.want, h); d != "" {
					t.Errorf("format 2: %s", d)
				}
			}
		})
	}
}

func TestSteps(t *testing.T) {
	ok := checkpoint.Step{Name: "unit-tests", State: checkpoint.StepPassed, Attempts: 1}
	bad := []struct {
		name  string
		steps []checkpoint.Step
	}{
		{"path in name", []checkpoint.Step{{Name: "../x", State: checkpoint.StepPassed}}},
		{"upper case name", []checkpoint.Step{{Name: "Build", State: checkpoint.StepPassed}}},
		{"empty name", []checkpoint.Step{{Name: "", State: checkpoint.StepPassed}}},
		{"duplicate", []checkpoint.Step{ok, ok}},
		{"unknown state", []checkpoint.Step{{Name: "x", State: "done"}}},
	}
	for _, tc := range bad {
		h := &checkpoint.Header{Steps: tc.steps}
		if err := h.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", tc.name, tc.steps)
		}
	}
	h := &checkpoint.Header{}
	h.Steps = h.WithStep(ok)
	h.Steps = h.WithStep(checkpoint.Step{Name: "lint", State: checkpoint.StepRunning, Exit: -1})
	failed := ok
	failed.State, failed.Exit = checkpoint.StepFailed, 2
	orig := h.Steps
	h.Steps = h.WithStep(failed)
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(h.Steps) != 2 || h.Steps[0].Name != "unit-tests" || h.Steps[0].State != checkpoint.StepFailed || h.Steps[1].Name != "lint" {
		t.Errorf("WithStep kept order and replaced in place? got %+v", h.Steps)
	}
	if orig[0].State != checkpoint.StepPassed {
		t.Error("WithStep modified the header's slice")
	}
	if s := h.Step("lint"); s == nil || s.State != checkpoint.StepRunning {
		t.Errorf("Step(lint) = %+v", s)
	}
	if h.Step("nope") != nil {
		t.Error("Step of an unknown name is not nil")
	}
}

// A step is skipped only for an identity it passed for: the same key and
// command line; a record from before identities stands for any command line
// with no key.
func TestStepPassedFor(t *testing.T) {
	id := func(key string, cmd ...string) checkpoint.Identity {
		return checkpoint.Identity{Key: key, Command: cmd}
	}
	passedA := checkpoint.Step{Name: "build", State: checkpoint.StepPassed, Identity: id("A", "make")}.WithPass()
	passedAB := checkpoint.Step{Name: "build", State: checkpoint.StepPassed, Identity: id("B", "make"), Passed: passedA.Passed}.WithPass()
	failedB := passedAB
	failedB.State, failedB.Identity = checkpoint.StepFailed, id("C", "make")
	legacy := checkpoint.Step{Name: "build", State: checkpoint.StepPassed}
	tests := []struct {
		name string
		step checkpoint.Step
		want checkpoint.Identity
		skip bool
	}{
		{"same key and command", passedA, id("A", "make"), true},
		{"another key", passedA, id("B", "make"), false},
		{"another command line", passedA, id("A", "make", "-j8"), false},
		{"an earlier key after another", passedAB, id("A", "make"), true},
		{"the later key", passedAB, id("B", "make"), true},
		{"a failure since keeps earlier passes", failedB, id("A", "make"), true},
		{"the failed key", failedB, id("C", "make"), false},
		{"a record before identities, no key", legacy, id("", "anything"), true},
		{"a record before identities, a key", legacy, id("A", "make"), false},
		{"running", checkpoint.Step{Name: "build", State: checkpoint.StepRunning, Identity: id("A", "make")}, id("A", "make"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := tt.step.PassedFor(tt.want); got != tt.skip {
				t.Errorf("PassedFor(%+v) = %v, want %v (step %+v)", tt.want, got, tt.skip, tt.step)
			}
		})
	}
	many := checkpoint.Step{Name: "build", State: checkpoint.StepPassed}
	for i := range checkpoint.MaxPassed + 5 {
		many.Identity = id(fmt.Sprint(i), "make")
		many = many.WithPass()
	}
	if len(many.Passed) != checkpoint.MaxPassed || many.Passed[0].Key != fmt.Sprint(checkpoint.MaxPassed+4) {
		t.Errorf("after %d passes: %d identities, newest %q", checkpoint.MaxPassed+5, len(many.Passed), many.Passed[0].Key)
	}
}
