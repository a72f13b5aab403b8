// Command resume runs a long computation that checkpoints its state,
// kills it with SIGKILL halfway, runs it again, and shows that the second
// run resumed from the last checkpoint instead of starting over.
//
//	go run ./examples/resume [--endpoints host:port]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/coordhq/coord/checkpoint"
	"github.com/coordhq/coord/examples/internal/exampleenv"
)

const steps = 400 // 400 steps of ~10 ms: about 4 s of work

// state is what the computation checkpoints.
type state struct {
	Step int     `json:"step"`
	Sum  float64 `json:"sum"`
}

func main() {
	child := flag.String("child", "", "internal: run the computation as job NAME")
	flag.Parse()
	if *child != "" {
		compute(*child)
		return
	}
	cli, done, err := exampleenv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer done()
	endpoints := strings.Join(cli.Endpoints(), ",")
	job := fmt.Sprintf("resume-%d", time.Now().UnixNano())

	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	run := func() *exec.Cmd {
		cmd := exec.Command(self, "--endpoints", endpoints, "--child", job)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		return cmd
	}
	fmt.Println("first run; it will be killed with SIGKILL after 2 s")
	first := run()
	time.Sleep(2 * time.Second)
	first.Process.Kill()
	first.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	cp, err := checkpoint.New(cli).Load(ctx, job)
	cancel()
	if err != nil {
		log.Fatalf("no checkpoint after the kill: %v", err)
	}
	var s state
	json.Unmarshal(cp.Data, &s)
	fmt.Printf("\nkilled; the newest checkpoint is at step %d of %d\n\nsecond run:\n", s.Step, steps)
	second := run()
	if err := second.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("saved work: %d of %d steps (%.0f%%) were not done again\n", s.Step, steps, 100*float64(s.Step)/steps)
}

// compute is the long computation: it resumes from the newest checkpoint
// of job and saves every 25 steps.
func compute(job string) {
	cli, err := exampleenv.NewClient(*exampleenv.Endpoints)
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	loop := &checkpoint.Loop{
		Store: checkpoint.New(cli), Job: job, EverySteps: 25,
		OnSave: func(p checkpoint.Progress) {
			fmt.Printf("\r  checkpoint %d saved", p.Seq)
		},
	}
	var begun = -1
	final, resumed, err := loop.Run(context.Background(),
		func() []byte { return mustJSON(state{}) },
		func(ctx context.Context, b []byte) ([]byte, bool, error) {
			var s state
			if err := json.Unmarshal(b, &s); err != nil {
				return nil, false, err
			}
			if begun < 0 {
				begun = s.Step
			}
			time.Sleep(10 * time.Millisecond) // the work of one step
			s.Step++
			s.Sum += 1 / float64(s.Step*s.Step)
			return mustJSON(s), s.Step == steps, nil
		})
	if err != nil {
		log.Fatal(err)
	}
	var s state
	json.Unmarshal(final, &s)
	fmt.Printf("\n  done: resumed=%v from step %d; sum of 1/n² for n=1..%d is %.6f\n", resumed, begun, s.Step, s.Sum)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	return b
}
