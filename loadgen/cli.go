package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// Exit codes: a bad command line is told apart from a run that failed.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// runError marks a failure of a workload that started, as opposed to an
// error in the command line; the latter is every other error, whether cobra
// raised it (unknown command or flag, bad value) or a workload's validation.
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// newRootCmd builds the loadgen command tree. The shared workload flags are
// persistent flags of the root, so every workload subcommand has them.
func newRootCmd() *cobra.Command {
	wf := &workloadFlags{}
	root := &cobra.Command{
		Use:   "loadgen",
		Short: "Strata's load generator: throughput and latency benchmarks",
		Long: `loadgen drives Strata's throughput and latency benchmarks and measures the
physical ceiling they are reported against.

Every workload prints a summary table on stdout; with --json the same figures
follow as one JSON object on the last line. Throughput is in MB/s, where
MB = 10^6 bytes; latencies are in milliseconds.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	wf.register(root.PersistentFlags())
	// --cpuprofile profiles loadgen itself, to tell whether a run was bound
	// by the broker or by the load generator.
	var cpuProfile string
	var profFile *os.File
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of loadgen itself to this file")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return runError{err}
		}
		profFile = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRunE = func(*cobra.Command, []string) error {
		if profFile == nil {
			return nil
		}
		pprof.StopCPUProfile()
		return profFile.Close()
	}
	root.AddCommand(newCeilingCmd(wf), newProduceCmd(wf), newConsumeCmd(wf), newE2ECmd(wf), newSuiteCmd(wf))
	return root
}

// run executes loadgen with args and returns the process exit code. It is
// main without the process: tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "loadgen: %v\n", err)
	if errors.As(err, new(runError)) {
		return exitFailure
	}
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}
