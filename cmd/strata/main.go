// Command strata is Strata's one binary: the broker (`strata serve`, as the
// broker lands) and the tools around it.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: strata <command> [flags]

commands:
  probe    set up an io_uring with a shard's flags and list what this kernel supports
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "probe":
		err = probe(os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "strata: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
