// Command strata is Strata's one binary: the broker (`strata serve`) and the
// tools around it.
package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	root := rootCommand()
	if err := root.Execute(); err != nil {
		if _, ok := err.(interrupted); !ok {
			fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		}
		os.Exit(exitCode(err))
	}
}

// rootCommand is the strata command and every subcommand.
func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a distributed commit log",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("strata {{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "print the version of this binary")
	root.AddCommand(serveCommand(), probeCommand(), versionCommand())
	root.AddCommand(topicCommand(), clusterCommand(), groupCommand(), produceCommand(), consumeCommand())
	return root
}

// usageError marks a bad command line (exit 2), as opposed to a failure
// while running (exit 1).
type usageError struct{ error }

func exitCode(err error) int {
	switch e := err.(type) {
	case usageError:
		return 2
	case interrupted:
		if s, ok := e.sig.(syscall.Signal); ok {
			return 128 + int(s) // the shell's status for a death by signal
		}
	}
	return 1
}

func probeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "probe",
		Short: "Set up an io_uring with a shard's flags and list what this kernel supports",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return probe(cmd.OutOrStdout()) },
	}
}
