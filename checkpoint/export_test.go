package checkpoint

// SetAfterChunk makes every Save of s call f after it wrote chunk i of
// checkpoint seq (chunk 0 is written by the claim). Set it before s is used.
func SetAfterChunk(s *Store, f func(seq int64, i int)) { s.hooks.afterChunk = f }

// SetBeforeChunks makes every Load attempt of s call f after it read the
// manifests and before it reads any chunk. Set it before s is used.
func SetBeforeChunks(s *Store, f func()) { s.hooks.beforeChunks = f }
