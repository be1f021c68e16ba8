package s3test

import "syscall"

// gatewayProcAttr makes the kernel kill the gateway when the test binary
// that started it dies.
func gatewayProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
