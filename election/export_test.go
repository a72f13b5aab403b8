package election

// Wakeups returns how many watch responses have woken waiting candidates
// so far.
func Wakeups() int64 { return wakeups.Load() }
