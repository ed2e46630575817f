//go:build !linux

package cli

import "os/exec"

// setRankAttrs does nothing where the system has no parent-death signal: a
// killed launcher leaves its ranks to end on their own (their peers' sockets
// close).
func setRankAttrs(*exec.Cmd) {}
