package s3store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// fakeStore opens a store on the fake server at url. It needs no gateway.
func fakeStore(t *testing.T, url string, o s3store.Options) *s3store.Store {
	t.Helper()
	o.UsePathStyle, o.Endpoint, o.Region = true, url, "us-east-1"
	if o.Credentials == nil {
		o.Credentials = credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, "")
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 50 * time.Millisecond
	}
	st, err := s3store.Open(context.Background(), "s3://fake/prefix", o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// wantOneLine checks that err's message is one line without the SDK's
// request ids or a formatting slip.
func wantOneLine(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	t.Logf("message: %s", msg)
	if strings.Contains(msg, "\n") || strings.Contains(msg, "RequestID") || strings.Contains(msg, "HostID") || strings.Contains(msg, "%!") {
		t.Errorf("error message is not one clean line: %q", msg)
	}
}

func TestCheckConditionalWrites(t *testing.T) {
	for _, tc := range []struct {
		name                string
		f                   *fakeS3
		refused             string // "" if the check passes
		conditionalDeletion bool
	}{
		{name: "ignores everything", f: &fakeS3{}, refused: "ignored If-None-Match: * on PutObject over an existing object"},
		{name: "applies refused writes", f: &fakeS3{honorPut: true, applyRefused: true}, refused: "changed the object all the same"},
		{name: "ignores If-Match on a missing object", f: &fakeS3{honorPut: true, ifMatchMissing: true}, refused: "ignored If-Match on PutObject of a missing object"},
		{name: "ignores multipart conditions", f: &fakeS3{honorPut: true}, refused: "ignored If-None-Match: * on CompleteMultipartUpload"},
		{name: "ignores If-Match on DELETE", f: &fakeS3{honorPut: true, honorComplete: true}},
		{name: "honours everything", f: &fakeS3{honorPut: true, honorComplete: true, honorDelete: true}, conditionalDeletion: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			st := fakeStore(t, newFake(t, f), s3store.Options{})
			err := st.CheckConditionalWrites(t.Context())
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("CheckConditionalWrites: %v", err)
				}
				if st.ConditionalDelete() != tc.conditionalDeletion {
					t.Errorf("ConditionalDelete = %v, want %v", st.ConditionalDelete(), tc.conditionalDeletion)
				}
				if _, ok := f.objs["prefix/"+s3store.CheckedMarker]; !ok {
					t.Error("no marker recorded the check")
				}
				return
			}
			var e *s3store.Error
			if !errors.Is(err, s3store.ErrNoConditionalWrites) || !errors.As(err, &e) || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("CheckConditionalWrites = %v; want an *Error wrapping ErrNoConditionalWrites saying %q", err, tc.refused)
			}
			wantOneLine(t, err)
			if len(f.objs) != 0 {
				t.Errorf("probes were left behind: %v", f.objs)
			}
		})
	}
}

// Throttling is retried with backoff by the SDK's retryer, then reported
// in one line.
func TestThrottlingRetried(t *testing.T) {
	f := &fakeS3{honorPut: true, honorComplete: true, honorDelete: true, failFirst: 2, failStatus: 503, failCode: "SlowDown"}
	st := fakeStore(t, newFake(t, f), s3store.Options{MaxAttempts: 3})
	if err := st.CheckConditionalWrites(t.Context()); err != nil {
		t.Fatalf("two 503 SlowDown then success: %v", err)
	}

	f = &fakeS3{failFirst: 1 << 30, failStatus: 503, failCode: "SlowDown"}
	st = fakeStore(t, newFake(t, f), s3store.Options{MaxAttempts: 4})
	_, err := st.ListSaved(t.Context()) // a GET: its error has a body, unlike HEAD's
	if !errors.Is(err, s3store.ErrUnavailable) || !strings.Contains(err.Error(), "throttling") || !strings.Contains(err.Error(), "503 SlowDown") || !strings.Contains(err.Error(), "4 attempts") {
		t.Errorf("endless SlowDown: %v", err)
	}
	if f.requests.Load() != 4 {
		t.Errorf("%d requests, want 4 attempts", f.requests.Load())
	}
	wantOneLine(t, err)
}

func TestRequestErrors(t *testing.T) {
	t.Run("expired credentials", func(t *testing.T) {
		f := &fakeS3{failFirst: 1 << 30, failStatus: 400, failCode: "ExpiredToken"}
		st := fakeStore(t, newFake(t, f), s3store.Options{})
		_, err := st.ListSaved(t.Context())
		if !errors.Is(err, s3store.ErrAccess) || !strings.Contains(err.Error(), "expired") {
			t.Errorf("ExpiredToken: %v", err)
		}
		if f.requests.Load() != 1 {
			t.Errorf("ExpiredToken was retried: %d requests", f.requests.Load())
		}
		wantOneLine(t, err)
	})
	t.Run("server error", func(t *testing.T) {
		f := &fakeS3{failFirst: 1 << 30, failStatus: 500, failCode: "InternalError"}
		st := fakeStore(t, newFake(t, f), s3store.Options{MaxAttempts: 2})
		b, _ := st.Backend("some-id")
		_, _, err := b.ReadHead(t.Context(), "session", 4096)
		if !errors.Is(err, s3store.ErrUnavailable) || !strings.Contains(err.Error(), "server error 500 InternalError") || !strings.Contains(err.Error(), "get prefix/some-id/session") {
			t.Errorf("500: %v", err)
		}
		wantOneLine(t, err)
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		st := fakeStore(t, "http://"+addr, s3store.Options{MaxAttempts: 2})
		b, _ := st.Backend("some-id")
		err = b.Check(t.Context())
		if !errors.Is(err, s3store.ErrUnavailable) || !strings.Contains(err.Error(), "cannot connect to "+addr) {
			t.Errorf("unreachable endpoint: %v", err)
		}
		wantOneLine(t, err)
	})
	t.Run("no credentials", func(t *testing.T) {
		url := newFake(t, &fakeS3{})
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		st, err := s3store.Open(t.Context(), "s3://fake", s3store.Options{UsePathStyle: true, Endpoint: url, Region: "us-east-1", MaxAttempts: 1})
		if err == nil {
			err = st.CheckConditionalWrites(t.Context())
		}
		if !errors.Is(err, s3store.ErrAccess) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("no credentials: %v", err)
		}
		wantOneLine(t, err)
	})
	t.Run("missing bucket", func(t *testing.T) {
		g := s3test.Shared(t)
		st, err := s3store.Open(t.Context(), "s3://no-such-bucket-ckpt/p", g.StoreOptions(s3store.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		err = st.CheckConditionalWrites(t.Context())
		if !errors.Is(err, s3store.ErrNoBucket) || err.Error() != "s3 bucket no-such-bucket-ckpt: check: no such bucket" {
			t.Errorf("CheckConditionalWrites on a missing bucket: %v", err)
		}
		b, _ := st.Backend("some-id")
		if err := b.Check(t.Context()); !errors.Is(err, s3store.ErrNoBucket) || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Check in a missing bucket: %v", err)
		}
		if _, err := st.ListSaved(t.Context()); !errors.Is(err, s3store.ErrNoBucket) {
			t.Errorf("List of a missing bucket: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		o := s3test.Shared(t).StoreOptions(s3store.Options{})
		o.Credentials = credentials.NewStaticCredentialsProvider(s3test.AccessKey, "wrong", "")
		st, err := s3store.Open(t.Context(), "s3://"+s3test.Bucket+"/p", o)
		if err != nil {
			t.Fatal(err)
		}
		err = st.CheckConditionalWrites(t.Context())
		if !errors.Is(err, s3store.ErrAccess) {
			t.Errorf("wrong secret: %v", err)
		}
		wantOneLine(t, err)
	})
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ url, bucket, prefix, err string }{
		{url: "s3://b", bucket: "b"},
		{url: "s3://b/", bucket: "b"},
		{url: "s3://b/ci/sessions/", bucket: "b", prefix: "ci/sessions/"},
		{url: "s3:///x", err: "names no bucket"},
		{url: "/tmp/x", err: "not an s3:// url"},
		{url: "s3://b/a/../c", err: "'..'"},
		{url: "s3://b/a//c", err: "empty"},
	} {
		b, p, err := s3store.ParseURL(tc.url)
		got := fmt.Sprint(err)
		if b != tc.bucket || p != tc.prefix || (tc.err == "") != (err == nil) || (tc.err != "" && !strings.Contains(got, tc.err)) {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, %q", tc.url, b, p, err, tc.bucket, tc.prefix, tc.err)
		}
	}
	if !s3store.IsURL("s3://b/p") || s3store.IsURL("/tmp/s3://x") {
		t.Error("IsURL")
	}
}

// A successful check is recorded under the prefix, so that the next process
// takes its findings over instead of probing again; without the record, or
// with one an older check wrote, it probes again.
func TestCheckedMarker(t *testing.T) {
	st := s3test.NewStore(t, s3store.Options{})
	ctx := context.Background()
	_, prefix, _ := s3store.ParseURL(st.Root())
	key := aws.String(prefix + s3store.CheckedMarker)
	out, err := st.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(st.Bucket()), Key: key})
	if err != nil {
		t.Fatalf("no %s after a successful check: %v", s3store.CheckedMarker, err)
	}
	var rec struct {
		Version           int       `json:"version"`
		Checked           time.Time `json:"checked"`
		ConditionalDelete bool      `json:"conditional_delete"`
	}
	err = json.NewDecoder(out.Body).Decode(&rec)
	out.Body.Close()
	if err != nil || rec.Checked.IsZero() || rec.Version == 0 || rec.ConditionalDelete != st.ConditionalDelete() {
		t.Fatalf("marker %+v (%v), store found conditional delete %v", rec, err, st.ConditionalDelete())
	}
	open := func() *s3store.Store {
		t.Helper()
		other, err := s3store.Open(ctx, st.Root(), s3test.Shared(t).StoreOptions(s3store.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		return other
	}
	if again := open(); !s3store.ReadChecked(ctx, again) || again.ConditionalDelete() != st.ConditionalDelete() {
		t.Error("a second store did not take the recorded check over")
	}
	old, _ := json.Marshal(map[string]any{"checked": time.Now(), "conditional_delete": true})
	if _, err := st.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(st.Bucket()), Key: key, Body: strings.NewReader(string(old))}); err != nil {
		t.Fatal(err)
	}
	if s3store.ReadChecked(ctx, open()) {
		t.Error("a store took over the marker of an older check")
	}
	if _, err := st.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(st.Bucket()), Key: key}); err != nil {
		t.Fatal(err)
	}
	third := open()
	if s3store.ReadChecked(ctx, third) {
		t.Error("a store took over a check that is no longer recorded")
	}
	if err := third.CheckConditionalWrites(ctx); err != nil {
		t.Fatal(err)
	}
	if !s3store.ReadChecked(ctx, third) {
		t.Error("the check did not record itself again")
	}
}
