package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the peer if the load tool dies first.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
