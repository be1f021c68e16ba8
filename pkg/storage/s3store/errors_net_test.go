package s3store_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// TestNetworkErrors checks that a request that gets no answer says in one
// line what failed, with which host, and wraps the matching kind, each an
// ErrUnavailable too. Everything stays on loopback: the name lookup asks a
// DNS server of the test's own.
func TestNetworkErrors(t *testing.T) {
	t.Run("name lookup", func(t *testing.T) {
		dns, queries := nxdomainServer(t)
		client := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
			d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "udp", dns)
			}}
		})
		st := fakeStore(t, "http://s3.ckpt-test.invalid:9000", s3store.Options{HTTPClient: client, MaxAttempts: 3})
		err := st.CheckConditionalWrites(t.Context())
		wantNetError(t, err, s3store.ErrResolve, "check: cannot resolve s3.ckpt-test.invalid: no such host")
		if strings.Contains(err.Error(), "attempts") || strings.Contains(err.Error(), "timed out") {
			t.Errorf("a name that does not exist was retried, or called a timeout: %v", err)
		}
		if queries.Load() == 0 {
			t.Error("the lookup did not reach the test's DNS server")
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		st := fakeStore(t, "http://"+addr, s3store.Options{MaxAttempts: 2})
		err = st.CheckConditionalWrites(t.Context())
		wantNetError(t, err, s3store.ErrRefused, "check: cannot connect to "+addr+": connection refused; gave up after 2 attempts")
	})
	t.Run("no answer", func(t *testing.T) {
		addr, conns := silentServer(t)
		client := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = 100 * time.Millisecond
		})
		var warnings []string
		warn := func(msg string) { warnings = append(warnings, msg) }
		st := fakeStore(t, "http://"+addr, s3store.Options{HTTPClient: client, MaxAttempts: 2, Warn: warn})
		err := st.CheckConditionalWrites(t.Context())
		wantNetError(t, err, s3store.ErrTimeout, "check: "+addr+" did not answer in time; gave up after 2 attempts")
		// Each retry after a wait is said, so that a hung server does not
		// keep ckpt silent for minutes.
		if want := "s3: " + addr + " did not answer in time; trying again (attempt 2 of 2)"; len(warnings) != 1 || warnings[0] != want {
			t.Errorf("warnings %q, want one: %q", warnings, want)
		}
		// The check gives up after its first request, and its retries:
		// the others would only fail the same way.
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2: one request, tried twice", n)
		}
	})
	// A failed handshake is not retried: the messages end without "gave
	// up after 3 attempts".
	t.Run("https to an http server", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		addr := srv.Listener.Addr().String()
		st := fakeStore(t, "https://"+addr, s3store.Options{MaxAttempts: 3})
		err := st.CheckConditionalWrites(t.Context())
		wantNetError(t, err, s3store.ErrTLS, "check: TLS handshake with "+addr+" failed: the server does not speak TLS (is the endpoint http://?)")
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes it refuses
		srv.StartTLS()
		t.Cleanup(srv.Close)
		addr := srv.Listener.Addr().String()
		st := fakeStore(t, "https://"+addr, s3store.Options{MaxAttempts: 3})
		err := st.CheckConditionalWrites(t.Context())
		wantNetError(t, err, s3store.ErrTLS, "check: TLS handshake with "+addr+" failed: x509: certificate signed by unknown authority")
	})
}

// wantNetError checks err: one clean line ending in want (after the
// bucket), wrapping kind and ErrUnavailable, and no other network failure.
func wantNetError(t *testing.T, err error, kind error, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	wantOneLine(t, err)
	if msg := err.Error(); !strings.HasSuffix(msg, ": "+want) {
		t.Errorf("message %q\n      want ...: %q", msg, want)
	}
	if !errors.Is(err, kind) || !errors.Is(err, s3store.ErrUnavailable) {
		t.Errorf("error does not wrap %v and %v: %v", kind, s3store.ErrUnavailable, err)
	}
	for _, other := range []error{s3store.ErrResolve, s3store.ErrRefused, s3store.ErrTimeout, s3store.ErrTLS, s3store.ErrAccess} {
		if other != kind && errors.Is(err, other) {
			t.Errorf("error also wraps %v: %v", other, err)
		}
	}
}

// nxdomainServer runs a DNS server on a loopback UDP port that answers
// every query "no such name", and returns its address and a count of the
// queries it answered.
func nxdomainServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var n atomic.Int32
	go func() {
		buf := make([]byte, 1500)
		for {
			size, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			// The answer is the header and the question: a 12-byte header,
			// then the name's labels up to a zero byte, then type and class.
			end := 12
			for end < size && buf[end] != 0 {
				end += 1 + int(buf[end])
			}
			end += 1 + 4
			if size < 12 || end > size {
				continue
			}
			resp := append([]byte(nil), buf[:end]...)
			resp[2] |= 0x80         // a response
			resp[3] = 0x80 | 3      // recursion available; RCODE 3, NXDOMAIN
			clear(resp[6:12])       // no answer, authority or additional records
			resp[4], resp[5] = 0, 1 // one question
			n.Add(1)
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String(), &n
}

// silentServer accepts connections on a loopback port and never answers;
// it returns its address and a count of the connections.
func silentServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				<-done
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		close(done)
		l.Close()
	})
	return l.Addr().String(), &n
}

// TestMaxAttemptsFromConfig checks that the SDK's configuration
// (AWS_MAX_ATTEMPTS) sets how often a request is tried, unless
// Options.MaxAttempts does.
func TestMaxAttemptsFromConfig(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
	for _, tc := range []struct {
		o    s3store.Options
		want string
	}{
		{s3store.Options{}, "gave up after 2 attempts"},
		{s3store.Options{MaxAttempts: 3}, "gave up after 3 attempts"},
	} {
		st := fakeStore(t, "http://"+addr, tc.o)
		err := st.CheckConditionalWrites(t.Context())
		if !errors.Is(err, s3store.ErrRefused) || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("MaxAttempts %d with AWS_MAX_ATTEMPTS=2: %v, want ...%s", tc.o.MaxAttempts, err, tc.want)
		}
	}
}
