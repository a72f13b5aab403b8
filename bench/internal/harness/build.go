package harness

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
)

// The packages of the two servers, as the bench module resolves them:
// coordd from the enclosing repository (replace directive), etcd at the
// version bench/go.mod pins.
const (
	coorddPackage = "github.com/coordhq/coord/cmd/coordd"
	etcdPackage   = "github.com/coordhq/coord/bench/cmd/etcd"
)

// Build compiles coordd and etcd into dir with the go command, whose
// output goes to out. The working directory must be inside the bench
// module.
func Build(ctx context.Context, dir string, out io.Writer) (Binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), coorddPackage, etcdPackage)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("harness: build servers: %w", err)
	}
	return Binaries{Coordd: filepath.Join(dir, "coordd"), Etcd: filepath.Join(dir, "etcd")}, nil
}
