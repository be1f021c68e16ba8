package s3store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// fakeStore opens a store on the fake server at url. It needs no gateway.
func fakeStore(t *testing.T, url string, o Options) *Store {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", testAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	t.Setenv("AWS_REGION", "us-east-1")
	o.UsePathStyle, o.Endpoint = true, url
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 50 * time.Millisecond
	}
	st, err := Open(context.Background(), "s3://fake/prefix", o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// wantOneLine checks that err's message is one line without the SDK's
// request ids.
func wantOneLine(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	t.Logf("message: %s", msg)
	if strings.Contains(msg, "\n") || strings.Contains(msg, "RequestID") || strings.Contains(msg, "HostID") {
		t.Errorf("error message is not one clean line: %q", msg)
	}
}

func TestCheckConditionalWrites(t *testing.T) {
	for _, tc := range []struct {
		name                string
		put, complete, del  bool
		refused             string // "" if the check passes
		conditionalDeletion bool
	}{
		{name: "ignores everything", refused: "ignored If-None-Match: * on PutObject"},
		{name: "ignores multipart conditions", put: true, refused: "ignored If-None-Match: * on CompleteMultipartUpload"},
		{name: "ignores If-Match on DELETE", put: true, complete: true},
		{name: "honours everything", put: true, complete: true, del: true, conditionalDeletion: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeS3{honorPut: tc.put, honorComplete: tc.complete, honorDelete: tc.del}
			st := fakeStore(t, newFake(t, f), Options{})
			err := st.CheckConditionalWrites(t.Context())
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("CheckConditionalWrites: %v", err)
				}
				if st.ConditionalDelete() != tc.conditionalDeletion {
					t.Errorf("ConditionalDelete = %v, want %v", st.ConditionalDelete(), tc.conditionalDeletion)
				}
				return
			}
			var e *Error
			if !errors.Is(err, ErrNoConditionalWrites) || !errors.As(err, &e) || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("CheckConditionalWrites = %v; want an *Error wrapping ErrNoConditionalWrites saying %q", err, tc.refused)
			}
			wantOneLine(t, err)
			if len(f.objs) != 0 {
				t.Errorf("the probe was left behind: %v", f.objs)
			}
		})
	}
}

// Throttling is retried with backoff by the SDK's retryer, then reported
// in one line.
func TestThrottlingRetried(t *testing.T) {
	f := &fakeS3{honorPut: true, honorComplete: true, honorDelete: true, failFirst: 2, failStatus: 503, failCode: "SlowDown"}
	st := fakeStore(t, newFake(t, f), Options{MaxAttempts: 3})
	if err := st.CheckConditionalWrites(t.Context()); err != nil {
		t.Fatalf("two 503 SlowDown then success: %v", err)
	}

	f = &fakeS3{failFirst: 1 << 30, failStatus: 503, failCode: "SlowDown"}
	st = fakeStore(t, newFake(t, f), Options{MaxAttempts: 4})
	_, err := st.List(t.Context()) // a GET: its error has a body, unlike HEAD's

	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "throttling") || !strings.Contains(err.Error(), "503 SlowDown") || !strings.Contains(err.Error(), "4 attempts") {
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
		st := fakeStore(t, newFake(t, f), Options{})
		_, err := st.List(t.Context())
		if !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), "expired") {
			t.Errorf("ExpiredToken: %v", err)
		}
		if f.requests.Load() != 1 {
			t.Errorf("ExpiredToken was retried: %d requests", f.requests.Load())
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
		st := fakeStore(t, "http://"+addr, Options{MaxAttempts: 2})
		_, err = st.OpenSession(t.Context(), "some-id")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "cannot connect to "+addr) {
			t.Errorf("unreachable endpoint: %v", err)
		}
		wantOneLine(t, err)
	})
	t.Run("no credentials", func(t *testing.T) {
		f := &fakeS3{}
		url := newFake(t, f)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		st, err := Open(t.Context(), "s3://fake", Options{UsePathStyle: true, Endpoint: url, MaxAttempts: 1})
		if err == nil {
			err = st.CheckConditionalWrites(t.Context())
		}
		if !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("no credentials: %v", err)
		}
		wantOneLine(t, err)
	})
	t.Run("missing bucket", func(t *testing.T) {
		needGateway(t)
		st, err := Open(t.Context(), "s3://no-such-bucket-ckpt/p", testOptions())
		if err != nil {
			t.Fatal(err)
		}
		err = st.CheckConditionalWrites(t.Context())
		if !errors.Is(err, ErrNoBucket) || err.Error() != "s3 bucket no-such-bucket-ckpt: check: no such bucket" {
			t.Errorf("CheckConditionalWrites on a missing bucket: %v", err)
		}
		_, err = st.Open(t.Context(), "some-id")
		if !errors.Is(err, ErrNoBucket) || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open in a missing bucket: %v", err)
		}
		if _, err := st.List(t.Context()); !errors.Is(err, ErrNoBucket) {
			t.Errorf("List of a missing bucket: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		needGateway(t)
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		st, err := Open(t.Context(), "s3://"+testBucket+"/p", testOptions())
		if err != nil {
			t.Fatal(err)
		}
		err = st.CheckConditionalWrites(t.Context())
		if !errors.Is(err, ErrAccess) {
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
		b, p, err := ParseURL(tc.url)
		got := fmt.Sprint(err)
		if b != tc.bucket || p != tc.prefix || (tc.err == "") != (err == nil) || (tc.err != "" && !strings.Contains(got, tc.err)) {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, %q", tc.url, b, p, err, tc.bucket, tc.prefix, tc.err)
		}
	}
}

// A successful check is recorded under the prefix, so that the next process
// takes its findings over instead of probing again; without the record, it
// probes again.
func TestCheckedMarker(t *testing.T) {
	st := newStore(t, testOptions())
	ctx := context.Background()
	key := st.prefix + CheckedMarker
	out, err := st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &st.bucket, Key: &key})
	if err != nil {
		t.Fatalf("no %s after a successful check: %v", CheckedMarker, err)
	}
	var rec checkedRecord
	err = json.NewDecoder(out.Body).Decode(&rec)
	out.Body.Close()
	if err != nil || rec.Checked.IsZero() || rec.ConditionalDelete != st.ConditionalDelete() {
		t.Fatalf("marker %+v (%v), store found conditional delete %v", rec, err, st.ConditionalDelete())
	}
	again, err := Open(ctx, st.Root(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !again.readChecked(ctx) || again.ConditionalDelete() != st.ConditionalDelete() {
		t.Error("a second store did not take the recorded check over")
	}
	if _, err := st.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &st.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	third, err := Open(ctx, st.Root(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if third.readChecked(ctx) {
		t.Error("a store took over a check that is no longer recorded")
	}
	if err := third.CheckConditionalWrites(ctx); err != nil {
		t.Fatal(err)
	}
	if !third.readChecked(ctx) {
		t.Error("the check did not record itself again")
	}
}
