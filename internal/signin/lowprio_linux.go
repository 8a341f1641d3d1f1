//go:build linux

package signin

import (
	"runtime"
	"syscall"
)

// hashNice is the scheduling priority password hashing runs at (0 normal, 19 lowest).
const hashNice = 10

// atLowPriority runs f on an OS thread of its own at nice hashNice, so that under contention the
// kernel gives the CPU to token checks first and to password hashing what is left. The thread is
// discarded afterwards (a goroutine that exits locked to its thread takes the thread with it), so
// nothing else ever runs at that priority.
func atLowPriority(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), hashNice)
		f()
	}()
	<-done
}
