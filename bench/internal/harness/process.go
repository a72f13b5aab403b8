package harness

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is one run of a server executable.
type process struct {
	cmd     *exec.Cmd
	started time.Time
	// exited is closed once the process has ended and been waited for;
	// cmd.ProcessState is valid from then on.
	exited chan struct{}
}

// startProcess runs bin with args, its output appended to logPath. The
// process is in its own process group, so that a Ctrl-C at the terminal
// reaches the harness only (which then kills it), and it is killed by the
// kernel if the harness dies. (Pdeathsig follows the OS thread that forked,
// which the Go runtime keeps alive: the harness locks no goroutine to a
// thread.) A goroutine waits for the process; kill waits for that goroutine.
func startProcess(bin string, args []string, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("harness: start %s: %w", bin, err)
	}
	go func() {
		cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *process) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill() // fails only if it already exited: exited closes then too
	<-p.exited
}

// finalUsage is the resource use of an exited process, from its rusage.
// Its peak RSS is an upper bound: on Linux the maxrss of a child starts at
// its parent's RSS when it forked.
func (p *process) finalUsage() Usage {
	st := p.cmd.ProcessState
	u := Usage{CPU: st.UserTime() + st.SystemTime()}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		u.PeakRSS = ru.Maxrss * 1024 // kB on Linux
	}
	return u
}
