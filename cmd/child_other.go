//go:build !linux

package cmd

import "syscall"

// setParentDeathSignal does nothing where the system has no parent-death
// signal: a SIGKILL of ckpt leaves the command's group running.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// killLeftovers finds nothing where /proc does not list the processes'
// environments.
func killLeftovers(string) int { return 0 }
