package s3store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Errors a Store and its backends return besides those of package storage
// and io/fs. Test for them with errors.Is; a failed request is also an
// *Error.
var (
	// ErrInvalidID reports an id that is not a valid session id; package
	// repository checks ids first, this is a second line of defence.
	ErrInvalidID = errors.New("invalid session id")
	// ErrNoBucket reports that the bucket does not exist.
	ErrNoBucket = errors.New("no such bucket")
	// ErrAccess reports credentials that are missing, rejected or expired,
	// or a request the bucket's policy refuses.
	ErrAccess = errors.New("access denied")
	// ErrUnavailable reports a server that could not be reached, or that
	// kept failing or throttling requests after every retry.
	ErrUnavailable = errors.New("server unavailable")
	// ErrResolve, ErrRefused, ErrTimeout and ErrTLS say why a request got
	// no answer at all. Each is an ErrUnavailable too: errors.Is holds for
	// both.
	//
	// ErrResolve reports a host name that does not resolve: a mistyped
	// endpoint, or no DNS.
	ErrResolve error = netFailure("cannot resolve the server's name")
	// ErrRefused reports a connection the server's host refused: nothing
	// listens on that port.
	ErrRefused error = netFailure("connection refused")
	// ErrTimeout reports a connection, or an answer to a request, that did
	// not come in time.
	ErrTimeout error = netFailure("timed out")
	// ErrTLS reports a TLS handshake that failed: a certificate this
	// machine does not trust, or an http:// server named as https://.
	ErrTLS error = netFailure("TLS handshake failed")
	// ErrNoConditionalWrites reports a server that ignores If-None-Match or
	// If-Match on writes, on which no lock or compare-and-swap can hold.
	ErrNoConditionalWrites = errors.New("the server does not enforce conditional writes")
)

// Error is a request to the object store that failed. Its message is one
// line: the bucket, the operation, the key and why, without the SDK's
// request ids. It wraps the SDK's error and, where one applies, one of
// ErrNoBucket, ErrAccess or ErrUnavailable.
type Error struct {
	Bucket string
	Op     string // "get", "put", "delete", "list", ...
	Key    string
	Reason string
	// Kind is ErrNoBucket, ErrAccess, ErrUnavailable, one of the network
	// failures that are ErrUnavailable too (ErrResolve, ErrRefused,
	// ErrTimeout, ErrTLS), ErrNoConditionalWrites, or nil.
	Kind error
	Err  error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("s3 bucket %s: %s: %s", e.Bucket, e.Op, e.Reason)
	}
	return fmt.Sprintf("s3 bucket %s: %s %s: %s", e.Bucket, e.Op, e.Key, e.Reason)
}

func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Kind, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// requestError describes err, returned by an SDK call, as an *Error.
func (st *Store) requestError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Bucket: st.bucket, Op: op, Key: key, Err: err}
	e.Reason, e.Kind = describe(err)
	return e
}

// describe returns a short reason for err and the kind of failure it is.
func describe(err error) (string, error) {
	attempts := ""
	var mae *retry.MaxAttemptsError
	if errors.As(err, &mae) && mae.Attempt > 1 {
		attempts = fmt.Sprintf("; gave up after %d attempts", mae.Attempt)
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted", nil
	}
	code, status := apiCode(err), httpStatus(err)
	switch code {
	case "NoSuchBucket":
		return "no such bucket", ErrNoBucket
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return "access denied: the credentials lack permission, or the bucket policy refuses", ErrAccess
	case "InvalidAccessKeyId":
		return "the server does not know the access key id (check AWS_ACCESS_KEY_ID or the profile)", ErrAccess
	case "SignatureDoesNotMatch":
		return "the request signature does not match (wrong secret access key?)", ErrAccess
	case "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken":
		return "the credentials have expired; renew them and try again", ErrAccess
	case "RequestTimeTooSkewed":
		return "this machine's clock is too far from the server's", ErrAccess
	case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests":
		return fmt.Sprintf("the server is throttling requests (%d %s)%s", status, code, attempts), ErrUnavailable
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		reason := fmt.Sprintf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
		if status > 0 {
			reason = fmt.Sprintf("%d %s", status, reason)
		}
		reason = strings.TrimSuffix(reason, ": ")
		if status >= 500 {
			return "server error " + reason + attempts, ErrUnavailable
		}
		return reason + attempts, nil
	}
	if status >= 500 {
		return fmt.Sprintf("server error %d%s", status, attempts), ErrUnavailable
	}
	if status > 0 {
		return fmt.Sprintf("http status %d", status), nil
	}
	// Before the network failures: failing to find credentials can wrap
	// one, that of the instance metadata service.
	if r, ok := credentialsProblem(err); ok {
		return r, ErrAccess
	}
	if r, kind, ok := networkProblem(err); ok {
		return r + attempts, kind
	}
	return oneLine(err.Error()), nil
}

// networkProblem describes a request that got no HTTP answer: what failed
// (the name lookup, the connection, the TLS handshake, the wait for an
// answer) and with which host, in one line.
func networkProblem(err error) (string, error, bool) {
	var (
		ue   *url.Error
		oe   *net.OpError
		dnse *net.DNSError
		ne   net.Error
	)
	// host is the endpoint as the request named it (host:port), the
	// bucket's own name included when it is addressed virtual-hosted.
	host := ""
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
	}
	isOp := errors.As(err, &oe)
	dialed := func() string {
		// The address dialed, when it says more than the host name.
		if isOp && oe.Addr != nil && host != "" && oe.Addr.String() != host {
			return fmt.Sprintf("%s (%s)", host, oe.Addr)
		}
		if host == "" && isOp && oe.Addr != nil {
			return oe.Addr.String()
		}
		return orServer(host)
	}
	switch {
	case errors.As(err, &dnse):
		name := dnse.Name
		if name == "" {
			name = orServer(host)
		}
		switch {
		case dnse.IsNotFound:
			return fmt.Sprintf("cannot resolve %s: no such host", name), ErrResolve, true
		case dnse.IsTimeout:
			return fmt.Sprintf("cannot resolve %s: the DNS server did not answer in time", name), ErrResolve, true
		}
		return fmt.Sprintf("cannot resolve %s: %s", name, dnse.Err), ErrResolve, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot connect to %s: connection refused", dialed()), ErrRefused, true
	case isTLS(err):
		return fmt.Sprintf("TLS handshake with %s failed: %s", orServer(host), tlsReason(err)), ErrTLS, true
	case isOp && oe.Op == "dial" && (oe.Timeout() || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Sprintf("cannot connect to %s: timed out", dialed()), ErrTimeout, true
	case (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded):
		if host == "" {
			return "timed out", ErrTimeout, true
		}
		return fmt.Sprintf("%s did not answer in time", host), ErrTimeout, true
	case isOp && oe.Op == "dial":
		return fmt.Sprintf("cannot connect to %s: %s", dialed(), syscallReason(oe.Err)), ErrUnavailable, true
	case ue != nil:
		return fmt.Sprintf("%s: %s", orServer(host), oneLine(ue.Err.Error())), ErrUnavailable, true
	case isOp:
		return oneLine(oe.Error()), ErrUnavailable, true
	}
	return "", nil, false
}

// unreachable reports a request that got no HTTP answer at all.
func unreachable(err error) bool {
	_, _, ok := networkProblem(err)
	return ok
}

func orServer(host string) string {
	if host == "" {
		return "the server"
	}
	return host
}

// syscallReason drops the name of the system call from err ("connect:
// network is unreachable").
func syscallReason(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return oneLine(err.Error())
}

// isTLS reports a failed TLS handshake.
func isTLS(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	return errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ae) || noTLS(err)
}

// noTLS reports an http:// server named as https://. Package net/http says
// so in an error of no type of its own.
func noTLS(err error) bool {
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

func tlsReason(err error) string {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	switch {
	case errors.As(err, &rhe), noTLS(err):
		return "the server does not speak TLS (is the endpoint http://?)"
	case errors.As(err, &cve):
		return oneLine(cve.Err.Error())
	case errors.As(err, &ae):
		return ae.Error()
	}
	return oneLine(err.Error())
}

// netFailure is the type of the network failures, each an ErrUnavailable.
type netFailure string

func (e netFailure) Error() string { return string(e) }

func (netFailure) Unwrap() error { return ErrUnavailable }

// credentialsProblem recognises the SDK's failure to find or refresh
// credentials, which has no exported type.
func credentialsProblem(err error) (string, bool) {
	msg := err.Error()
	for _, s := range []string{"failed to retrieve credentials", "failed to refresh cached credentials", "no EC2 IMDS role found", "static credentials are empty"} {
		if strings.Contains(msg, s) {
			return "no usable credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", true
		}
	}
	return "", false
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isPrecondition reports a conditional request whose condition failed: 412,
// or 409 ConditionalRequestConflict, which S3 returns when a concurrent
// conditional write to the same key won.
func isPrecondition(err error) bool {
	switch code := apiCode(err); {
	case code == "PreconditionFailed", code == "ConditionalRequestConflict":
		return true
	case code == "":
		s := httpStatus(err)
		return s == 412 || s == 409
	}
	return false
}

// isNotFound reports a missing key (never a missing bucket).
func isNotFound(err error) bool {
	switch apiCode(err) {
	case "NoSuchKey", "NotFound", "NoSuchUpload":
		return true
	case "NoSuchBucket":
		return false
	case "":
		return httpStatus(err) == 404
	}
	return false
}

// isNotImplemented reports a server that does not implement a request or a
// header.
func isNotImplemented(err error) bool {
	return apiCode(err) == "NotImplemented" || httpStatus(err) == 501
}
