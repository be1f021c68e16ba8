package s3store

import (
	"fmt"
	"strings"
	"sync"

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
