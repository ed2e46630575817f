//go:build linux

package cli

import (
	"os/exec"
	"syscall"
)

// setRankAttrs makes a rank die with the launcher, even when the launcher is
// killed with no chance to stop it.
func setRankAttrs(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
