// Command ckpt keeps checkpointed test-run sessions on disk. See README.md.
package main

import (
	"os"

	"github.com/ckpt-dev/ckpt/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:], cmd.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv))
}
