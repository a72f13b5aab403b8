package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// manifestVersion is the version of the manifest format Save writes and
// Load reads; a manifest of another version is not read.
const manifestVersion = 1

// manifest is the value of a manifest key. A checkpoint exists once its
// manifest does; the manifest is written after every chunk, and says how
// to check them.
type manifest struct {
	Version   int               `json:"version"`
	Seq       int64             `json:"seq"`
	Size      int64             `json:"size"`
	Chunks    int               `json:"chunks"`
	ChunkSize int               `json:"chunk_size"`
	SHA256    string            `json:"sha256"`
	Created   time.Time         `json:"created"`
	Meta      map[string]string `json:"meta,omitempty"`
}

// chunkCount is how many chunks hold size bytes: at least one, so that
// every checkpoint, even an empty one, has the chunk 0 its writer claims.
func chunkCount(size int64, chunkSize int) int {
	if size == 0 {
		return 1
	}
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// chunkLen is the length chunk i must have.
func (m *manifest) chunkLen(i int) int {
	if i < m.Chunks-1 {
		return m.ChunkSize
	}
	return int(m.Size - int64(m.Chunks-1)*int64(m.ChunkSize))
}

func (m *manifest) info(rev int64) Info {
	return Info{
		Seq: m.Seq, Size: m.Size, Chunks: m.Chunks, ChunkSize: m.ChunkSize,
		SHA256: m.SHA256, Created: m.Created, Meta: m.Meta, Revision: rev,
	}
}

// parseManifest decodes the manifest stored under the key of seq and checks
// that it is consistent: a manifest it accepts describes a readable
// checkpoint of at most MaxSize bytes. Its errors do not wrap ErrCorrupt;
// the caller adds the job and the sequence number.
func parseManifest(seq int64, b []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case m.Version != manifestVersion:
		return nil, fmt.Errorf("manifest version %d, this reader knows %d", m.Version, manifestVersion)
	case m.Seq != seq:
		return nil, fmt.Errorf("manifest says seq %d", m.Seq)
	case m.Size < 0 || m.Size > MaxSize:
		return nil, fmt.Errorf("manifest size %d out of range", m.Size)
	case m.ChunkSize <= 0 || m.ChunkSize > MaxSize:
		return nil, fmt.Errorf("manifest chunk size %d out of range", m.ChunkSize)
	case m.Chunks != chunkCount(m.Size, m.ChunkSize):
		return nil, fmt.Errorf("manifest has %d chunks for %d bytes in chunks of %d", m.Chunks, m.Size, m.ChunkSize)
	}
	if sum, err := hex.DecodeString(m.SHA256); err != nil || len(sum) != sha256.Size || hex.EncodeToString(sum) != m.SHA256 {
		return nil, errors.New("manifest checksum is not a lower-case hex SHA-256")
	}
	return &m, nil
}
