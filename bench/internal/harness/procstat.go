package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// Usage is the resource use of a set of server processes.
type Usage struct {
	// CPU is user plus system time, summed over the processes.
	CPU time.Duration
	// PeakRSS is the largest VmHWM (or, for a process that has exited, the
	// maxrss of its rusage) among the processes, in bytes.
	PeakRSS int64
}

// add merges the use of one more process into u.
func (u *Usage) add(o Usage) {
	u.CPU += o.CPU
	u.PeakRSS = max(u.PeakRSS, o.PeakRSS)
}

// readUsage reads the CPU time and peak RSS of a running process from /proc.
func readUsage(pid int) (Usage, error) {
	cpu, err := readCPU(pid)
	if err != nil {
		return Usage{}, err
	}
	hwm, err := readStatusKB(pid, "VmHWM")
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPU: cpu, PeakRSS: hwm * 1024}, nil
}

// readCPU returns utime+stime of pid from /proc/PID/stat.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("harness: cpu of %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after its closing parenthesis start with field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("harness: cpu of %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("harness: cpu of %d: stat has %d fields", pid, len(f)+2)
	}
	u, err1 := strconv.ParseInt(f[utime], 10, 64)
	s, err2 := strconv.ParseInt(f[stime], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("harness: cpu of %d: malformed utime/stime %q %q", pid, f[utime], f[stime])
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// readStatusKB returns a "Field:  N kB" line of /proc/PID/status, in kB.
func readStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("harness: %s of %d: %w", field, pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("harness: %s of %d: %q: %w", field, pid, rest, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("harness: %s of %d: not in /proc status", field, pid)
}
