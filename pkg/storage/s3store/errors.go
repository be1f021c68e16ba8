package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

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
	Kind   error // ErrNoBucket, ErrAccess, ErrUnavailable or nil
	Err    error
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
	if errors.As(err, &mae) {
		attempts = fmt.Sprintf("; gave up after %d attempts", mae.Attempt)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted", nil
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out" + attempts, ErrUnavailable
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
	if r, ok := credentialsProblem(err); ok {
		return r, ErrAccess
	}
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Sprintf("cannot connect to %s: %v%s", oe.Addr, oe.Err, attempts), ErrUnavailable
	case errors.As(err, &ne) && ne.Timeout():
		return "the connection timed out" + attempts, ErrUnavailable
	case errors.As(err, &ue):
		return fmt.Sprintf("%v%s", ue.Err, attempts), ErrUnavailable
	case errors.As(err, &oe):
		return fmt.Sprintf("%v%s", oe, attempts), ErrUnavailable
	}
	return oneLine(err.Error()), nil
}

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
