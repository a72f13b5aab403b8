package semaphore

// Wakeups returns how many watch responses have woken waiters so far.
func Wakeups() int64 { return wakeups.Load() }
