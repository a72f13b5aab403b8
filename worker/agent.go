package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/coordhq/coord/checkpoint"
	"github.com/coordhq/coord/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// The steps of an upgrade, in order. Reboot is skipped without a reboot
// command.
const (
	StepDrain   = "drain"
	StepUpgrade = "upgrade"
	StepReboot  = "reboot"
	StepHealth  = "health"
	StepUndrain = "undrain"
)

// AgentConfig configures the agent of one node.
type AgentConfig struct {
	Client  *clientv3.Client
	ID      string // node id, unique in the cluster (default: hostname)
	Group   string // rollout group (default "default")
	Address string
	Labels  map[string]string
	// TTL is the session's lease TTL in seconds (default 10): how long a
	// dead agent stays listed. Its upgrade slot is not bound to it.
	TTL int

	// Shell commands, run with sh -c. VersionCmd prints the node's current
	// version (required). BlockCmd, if set, keeps the node from starting
	// an upgrade while it exits non-zero. UpgradeCmd gets
	// COORD_TARGET_VERSION. Every command gets COORD_NODE_ID, COORD_GROUP.
	VersionCmd, DrainCmd, UpgradeCmd, RebootCmd, HealthCmd, UndrainCmd, BlockCmd string

	// HealthTimeout, if set, overrides the rollout's health timeout for
	// this node.
	HealthTimeout time.Duration
	// HealthInterval is the pause between health checks (default 2 s).
	HealthInterval time.Duration
	// PollInterval bounds how long the agent waits before looking again at
	// a window, a blocker or the min-interval (default 10 s).
	PollInterval time.Duration

	// Run runs one command and returns its output; the default runs
	// `sh -c command` with env added to the agent's environment. Tests
	// replace it.
	Run func(ctx context.Context, step, command string, env []string) (string, error)
	Log *slog.Logger
}

// Agent drives its node through rollouts of its group: it registers the
// node, and whenever a running rollout wants another version, inside a
// window, without a blocker, it takes a slot of the group's semaphore and
// runs drain, upgrade, reboot, health and undrain, recording each finished
// step in a checkpoint guarded by the slot. A crash or reboot at any point
// resumes at the step it interrupted: finished steps never run again,
// interrupted ones run again (so every command must be idempotent).
type Agent struct {
	cfg   AgentConfig
	ckpt  *checkpoint.Store
	log   *slog.Logger
	sess  *concurrency.Session
	reg   *Registration
	sem   *semaphore.Semaphore
	steps []string
}

// progress is the checkpoint of a node's upgrade.
type progress struct {
	Version string    `json:"version"` // the rollout's target
	Done    []string  `json:"done"`    // finished steps, in order
	Started time.Time `json:"started"`
	// Failed says why the node failed, if it did; FailedAt is the
	// rollout's revision then. A resume (a newer revision) retries.
	Failed   string `json:"failed,omitempty"`
	FailedAt int64  `json:"failed_at,omitempty"`
	// Finished: every step ran and the slot was released.
	Finished bool `json:"finished,omitempty"`
}

// NewAgent checks cfg and fills its defaults.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Client == nil {
		return nil, errors.New("worker: agent needs a client")
	}
	if cfg.ID == "" {
		cfg.ID, _ = os.Hostname()
	}
	if cfg.Group == "" {
		cfg.Group = "default"
	}
	if err := validSegment("node id", cfg.ID); err != nil {
		return nil, err
	}
	if err := validSegment("group", cfg.Group); err != nil {
		return nil, err
	}
	if cfg.VersionCmd == "" {
		return nil, errors.New("worker: agent needs a version command (--version-cmd)")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Run == nil {
		cfg.Run = shellRunner
	}
	a := &Agent{cfg: cfg, ckpt: checkpoint.New(cfg.Client), log: cfg.Log.With("node", cfg.ID, "group", cfg.Group)}
	a.steps = []string{StepDrain, StepUpgrade}
	if cfg.RebootCmd != "" {
		a.steps = append(a.steps, StepReboot)
	}
	a.steps = append(a.steps, StepHealth, StepUndrain)
	return a, nil
}

func shellRunner(ctx context.Context, step, command string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s command %q: %w: %s", step, command, err, lastLine(string(out)))
	}
	return string(out), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (a *Agent) job() string { return "rollout-" + a.cfg.Group + "-" + a.cfg.ID }

func (a *Agent) env(extra ...string) []string {
	return append([]string{"COORD_NODE_ID=" + a.cfg.ID, "COORD_GROUP=" + a.cfg.Group}, extra...)
}

// version runs the version command: the node's current version.
func (a *Agent) version(ctx context.Context) (string, error) {
	out, err := a.cfg.Run(ctx, "version", a.cfg.VersionCmd, a.env())
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(out)
	if v == "" {
		return "", errors.New("the version command printed nothing")
	}
	return v, nil
}
