package s3store_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// TestSDKWarnings checks that the AWS SDK never prints: its warnings go to
// Options.Warn, one line each, or nowhere. The warning is the one of an
// instance metadata service that refuses IMDSv2 tokens, which the SDK logs
// while it looks for credentials, with a logger it takes from the
// configuration as it loads it.
func TestSDKWarnings(t *testing.T) {
	for _, withWarn := range []bool{true, false} {
		name := "dropped"
		if withWarn {
			name = "to Warn"
		}
		t.Run(name, func(t *testing.T) {
			imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut {
					http.Error(w, "IMDSv2 is off", http.StatusForbidden)
					return
				}
				http.NotFound(w, r) // no role
			}))
			t.Cleanup(imds.Close)
			t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

			var (
				mu       sync.Mutex
				warnings []string
			)
			o := s3store.Options{UsePathStyle: true, Endpoint: newFake(t, &fakeS3{}), Region: "us-east-1", MaxAttempts: 1}
			if withWarn {
				o.Warn = func(msg string) {
					mu.Lock()
					defer mu.Unlock()
					warnings = append(warnings, msg)
				}
			}
			var err error
			stderr := captureStderr(t, func() {
				var st *s3store.Store
				st, err = s3store.Open(t.Context(), "s3://fake", o)
				if err == nil {
					err = st.CheckConditionalWrites(t.Context())
				}
			})
			if !errors.Is(err, s3store.ErrAccess) {
				t.Errorf("without credentials: %v, want ErrAccess", err)
			}
			if stderr != "" {
				t.Errorf("the SDK printed on stderr: %q", stderr)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case !withWarn && len(warnings) > 0:
				t.Errorf("warnings without Warn: %q", warnings)
			case withWarn && len(warnings) != 1:
				t.Errorf("warnings %q, want the IMDSv1 one once", warnings)
			case withWarn && (!strings.HasPrefix(warnings[0], "aws sdk: falling back to IMDSv1: ") || strings.Contains(warnings[0], "\n")):
				t.Errorf("warning %q, want one line starting %q", warnings[0], "aws sdk: falling back to IMDSv1: ")
			}
		})
	}
}

// captureStderr returns what f writes to os.Stderr.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	saved := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = saved }()
	f()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
