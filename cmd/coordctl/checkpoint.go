package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/coordhq/coord/checkpoint"
)

// Exit codes of checkpoint load that scripts branch on.
const (
	exitOlderCheckpoint = 3 // data written, but from an older checkpoint: the newest is corrupt
	exitNoCheckpoint    = 4 // the job has no checkpoint: start from scratch
)

// checkpoint saves and loads a program's state, so that any program can
// resume after a crash:
//
//	coordctl checkpoint save JOB [FILE|-]
//	coordctl checkpoint load JOB [-o FILE]
//	coordctl checkpoint list JOB
//	coordctl checkpoint delete JOB
func (c *ctl) checkpoint(ctx context.Context, args []string, stdin io.Reader) error {
	if len(args) == 0 {
		return errors.New("checkpoint: want save, load, list or delete")
	}
	st := checkpoint.New(c.cli)
	sub, rest := args[0], args[1:]
	// A checkpoint is up to 64 MiB: allow it more than one request's time.
	ctx, cancel := context.WithTimeout(ctx, max(c.timeout, time.Minute))
	defer cancel()
	switch sub {
	case "save":
		if len(rest) < 1 || len(rest) > 2 {
			return errors.New("checkpoint save: want JOB [FILE|-]")
		}
		in := stdin
		if len(rest) == 2 && rest[1] != "-" {
			f, err := os.Open(rest[1])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		// Read one byte past the limit, so an oversized input is refused
		// rather than silently cut.
		data, err := io.ReadAll(io.LimitReader(in, checkpoint.MaxSize+1))
		if err != nil {
			return fmt.Errorf("checkpoint save: read input: %w", err)
		}
		info, err := st.Save(ctx, rest[0], data)
		if err != nil {
			return err
		}
		return c.emit(info, func() {
			fmt.Fprintf(c.out, "saved %s seq %d, %d bytes, sha256 %s\n", rest[0], info.Seq, info.Size, info.SHA256)
		})
	case "load":
		fs := flag.NewFlagSet("checkpoint load", flag.ContinueOnError)
		outFile := fs.String("o", "", "write the data to this file instead of stdout")
		job, err := parseInterleaved(fs, rest)
		if err != nil {
			return err
		}
		cp, err := st.Load(ctx, job)
		if errors.Is(err, checkpoint.ErrNotFound) {
			fmt.Fprintf(c.errOut, "coordctl: no checkpoint of job %s\n", job)
			return exitCode(exitNoCheckpoint)
		}
		if cp == nil {
			return err
		}
		var loadErr error
		if err != nil { // an older checkpoint, because newer ones are corrupt
			fmt.Fprintf(c.errOut, "coordctl: %v\ncoordctl: loaded seq %d instead\n", err, cp.Seq)
			loadErr = exitCode(exitOlderCheckpoint)
		}
		if *outFile == "" {
			if _, err := c.out.Write(cp.Data); err != nil {
				return err
			}
			return loadErr
		}
		if err := writeFileAtomic(*outFile, cp.Data); err != nil {
			return err
		}
		return loadErr
	case "list":
		if len(rest) != 1 {
			return errors.New("checkpoint list: want JOB")
		}
		infos, err := st.List(ctx, rest[0])
		if infos == nil && err != nil {
			return err
		}
		if err != nil {
			fmt.Fprintf(c.errOut, "coordctl: %v\n", err)
		}
		return c.emit(infos, func() {
			tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tSIZE\tCHUNKS\tCREATED\tSHA256")
			for _, i := range infos {
				fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%.16s\n", i.Seq, i.Size, i.Chunks, i.Created.Format(time.RFC3339), i.SHA256)
			}
			tw.Flush()
		})
	case "delete":
		if len(rest) != 1 {
			return errors.New("checkpoint delete: want JOB")
		}
		if err := st.Delete(ctx, rest[0]); err != nil {
			return err
		}
		return c.emit(map[string]any{"job": rest[0], "deleted": true}, func() { fmt.Fprintln(c.out, "OK") })
	default:
		return fmt.Errorf("checkpoint: unknown subcommand %q", sub)
	}
}

// parseInterleaved parses flags before or after one positional argument.
func parseInterleaved(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("%s: want JOB", fs.Name())
	}
	pos := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() != 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return pos, nil
}

// writeFileAtomic writes data next to path and renames it into place, so a
// crash never leaves a half-written state file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".coordctl-tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
