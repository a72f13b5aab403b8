package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// keys is the layout of one job under the root prefix R:
//
//	R<job>/m/<seq>            manifest of checkpoint <seq> (JSON)
//	R<job>/d/<seq>/<index>    chunk <index> of checkpoint <seq>
//
// <seq> has 20 digits and <index> 8, zero-padded, so that key order is
// numeric order and every set Save and Load touch is one key range:
//
//	R<job>/m/ ......................... R<job>/m0     every manifest
//	    [m/<seq>, m0)                                 manifests at seq and above
//	    [m/, m/<seq>)                                 manifests below seq
//	R<job>/d/ ......................... R<job>/e      every chunk
//	    [d/<seq>/00000000, d/<seq>0)                  the chunks of seq
//	    [d/<seq>/00000001, e)                         what a claim of seq clears
//	    [d/, d/<seq>/)                                chunks below seq
type keys struct {
	pfx string // R<job>/
}

func newKeys(root, job string) (keys, error) {
	if err := validJob(job); err != nil {
		return keys{}, err
	}
	return keys{pfx: root + job + "/"}, nil
}

func (k keys) job() (string, string) { return k.pfx, clientv3.GetPrefixRangeEnd(k.pfx) }

func (k keys) manifest(seq int64) string { return fmt.Sprintf("%sm/%020d", k.pfx, seq) }

// manifests returns the range of every manifest of the job.
func (k keys) manifests() (string, string) {
	return k.pfx + "m/", clientv3.GetPrefixRangeEnd(k.pfx + "m/")
}

func (k keys) chunkDir(seq int64) string { return fmt.Sprintf("%sd/%020d/", k.pfx, seq) }

func (k keys) chunk(seq int64, i int) string { return fmt.Sprintf("%s%08d", k.chunkDir(seq), i) }

// chunks returns the range of every chunk of the job.
func (k keys) chunks() (string, string) {
	return k.pfx + "d/", clientv3.GetPrefixRangeEnd(k.pfx + "d/")
}

// seqOf returns the sequence number of a manifest key, or false if key is
// not one.
func (k keys) seqOf(key []byte) (int64, bool) {
	s, ok := strings.CutPrefix(string(key), k.pfx+"m/")
	if !ok || len(s) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seq < 1 {
		return 0, false
	}
	return seq, true
}

// validJob accepts what can be one key segment and read back unambiguously.
func validJob(job string) error {
	switch {
	case job == "":
		return fmt.Errorf("%w: empty job name", ErrBadJob)
	case len(job) > 256:
		return fmt.Errorf("%w: job name longer than 256 bytes", ErrBadJob)
	case !utf8.ValidString(job):
		return fmt.Errorf("%w: job name %q is not valid UTF-8", ErrBadJob, job)
	case strings.Contains(job, "/"):
		return fmt.Errorf("%w: job name %q contains '/'", ErrBadJob, job)
	case strings.IndexFunc(job, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: job name %q contains a control character", ErrBadJob, job)
	}
	return nil
}
