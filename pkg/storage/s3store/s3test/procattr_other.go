//go:build !linux

package s3test

import "syscall"

// gatewayProcAttr: without a parent-death signal, a gateway outlives a test
// binary that is killed; StopShared stops it otherwise.
func gatewayProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
