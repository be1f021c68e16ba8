package s3store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/logging"
)

// maxWarnings bounds the distinct SDK warnings one Store passes on.
const maxWarnings = 20

// sdkLogger is the logger the AWS SDK writes to: its warnings go to warn,
// once each, as one line; everything else, and everything without warn,
// is dropped. Without it the SDK would print "SDK 2006/01/02 15:04:05 WARN
// ..." lines on stderr itself.
func sdkLogger(warn func(string)) logging.Logger {
	if warn == nil {
		return logging.Nop{}
	}
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		if c != logging.Warn {
			return
		}
		msg := "aws sdk: " + strings.Join(strings.Fields(fmt.Sprintf(format, v...)), " ")
		mu.Lock()
		defer mu.Unlock()
		// A warning that names something new each time (a request's
		// Date header) stops at a few lines.
		if seen[msg] || len(seen) >= maxWarnings {
			return
		}
		seen[msg] = true
		warn(msg)
	})
}

// serialized returns warn called by one goroutine at a time (nil for nil):
// the SDK's logger and the retryers of concurrent requests share it.
func serialized(warn func(string)) func(string) {
	if warn == nil {
		return nil
	}
	var mu sync.Mutex
	return func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		warn(msg)
	}
}

// slowRetryer tells warn, before it retries a request that got no answer in
// time, what happened: such a request is retried only after a long wait
// each time, and a server that accepts connections but never answers
// would otherwise keep ckpt silent for minutes.
type slowRetryer struct {
	aws.RetryerV2
	warn func(string)
}

func (r slowRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr == nil {
		if msg, kind, ok := networkProblem(err); ok && errors.Is(kind, ErrTimeout) {
			r.warn(fmt.Sprintf("s3: %s; trying again (attempt %d of %d)", msg, attempt+1, r.MaxAttempts()))
		}
	}
	return d, derr
}
