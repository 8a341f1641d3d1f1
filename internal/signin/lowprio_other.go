//go:build !linux

package signin

// atLowPriority runs f; only Linux lowers the priority of one thread.
func atLowPriority(f func()) { f() }
