package cmd

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	good := []struct {
		in   string
		want time.Duration
	}{
		{"90m", 90 * time.Minute},
		{"36h", 36 * time.Hour},
		{"7d", 7 * day},
		{"1.5d", 36 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"0d30m", 30 * time.Minute},
		{"2h45m30s", 2*time.Hour + 45*time.Minute + 30*time.Second},
		{"1ms", time.Millisecond},
		{"100000d", 100000 * day},
	}
	for _, tt := range good {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []string{
		"", "0", "0d", "0s", "-5m", "-1d", "7", "d", "7days", "1e3d", "+1d", "1d-5m", "1d+5m",
		"inf", "NaNd", "1.2.3d", "0x10d", "1_000d", "7d7d", "9999999999d", "106751d23h47m17s",
	}
	for _, in := range bad {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}
