package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestHelpListsEveryFlag walks every command: each has a short
// description, each flag a usage text, and the help it prints lists every
// visible flag with its default when that is not the zero value.
func TestHelpListsEveryFlag(t *testing.T) {
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Short == "" {
			t.Errorf("%s: no short description", cmd.CommandPath())
		}
		help := cmd.UsageString()
		check := func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			if f.Usage == "" {
				t.Errorf("%s --%s: no usage text", cmd.CommandPath(), f.Name)
			}
			if !strings.Contains(help, "--"+f.Name) {
				t.Errorf("%s --help does not list --%s:\n%s", cmd.CommandPath(), f.Name, help)
			}
			switch f.DefValue {
			case "", "0", "false", "[]", "0s":
			default:
				if !strings.Contains(help, "(default ") || !strings.Contains(help, f.DefValue) {
					t.Errorf("%s --help does not give --%s's default %q", cmd.CommandPath(), f.Name, f.DefValue)
				}
			}
		}
		cmd.LocalFlags().VisitAll(check)
		cmd.InheritedFlags().VisitAll(check)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(rootCommand())
}

// TestHelpText runs the binary's --help for the commands of the Quick
// start and checks, word for word, the lines that say what a flag does
// and defaults to.
func TestHelpText(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"topic", "create", "--help"}, []string{
			"  strata topic create NAME [flags]\n",
			"      --partitions N           partition count N; 0 takes the controller's default, 1\n",
			"      --config KEY=VALUE       topic setting KEY=VALUE (repeatable), e.g. retention.ms=86400000\n",
			"      --timeout duration    give up when the brokers have not answered the whole command within this long (default 30s)\n",
		}},
		{[]string{"produce", "--help"}, []string{
			`      --acks string                wait for the in-sync replicas (all, -1), the leader (1, leader) or nothing (0, none) (default "all")` + "\n",
			"      --timeout duration           give up when no broker answers the connection within this long (default 30s)\n",
		}},
		{[]string{"consume", "--help"}, []string{
			`      --from POSITION             start each partition at POSITION: earliest, latest, OFFSET, -N (N before the end) or @TIME (RFC 3339 or unix ms) (default "latest")` + "\n",
		}},
		{[]string{"serve", "--help"}, []string{
			`      --listen string                 client address HOST:PORT (default "127.0.0.1:9292")` + "\n",
			"      --session-timeout duration      how long the controller waits for a broker's heartbeat before fencing it (the same on every voter) (default 9s)\n",
		}},
	} {
		out, errOut, code := run(t, "127.0.0.1:9292", "", c.args...)
		if code != 0 || errOut != "" {
			t.Fatalf("strata %v: exit %d, %q", c.args, code, errOut)
		}
		// Column widths follow the longest flag; the words are what count.
		words := func(s string) string { return strings.Join(strings.Fields(s), " ") }
		for _, line := range c.want {
			if !strings.Contains(words(out), words(line)) {
				t.Errorf("strata %v lacks the line\n%q\nin\n%s", c.args, line, out)
			}
		}
	}
}
