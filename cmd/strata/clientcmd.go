package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// brokersEnv names the environment variable that stands in for --brokers.
const brokersEnv = "STRATA_BROKERS"

// clientTimeoutDefault is how long a command waits for a broker that does
// not answer (--timeout).
const clientTimeoutDefault = 30 * time.Second

// clientFlags are the flags every client command takes.
type clientFlags struct {
	brokers string
	// timeout bounds an admin command as a whole, and the connection and
	// first answer of produce and consume.
	timeout time.Duration
	// adminCtx is the context of the admin command under way, so that an
	// error it ends with can be told as the timeout it was.
	adminCtx context.Context
}

// What --timeout bounds, as each kind of command's help says it.
const (
	timeoutAdminUse  = "give up when the brokers have not answered the whole command within this long"
	timeoutStreamUse = "give up when no broker answers the connection within this long"
)

// addClientFlags gives cmd and its subcommands --brokers and --timeout
// (timeoutUse says what it bounds), and makes flag errors usage errors
// (exit 2).
func addClientFlags(cmd *cobra.Command, f *clientFlags, timeoutUse string) {
	def := os.Getenv(brokersEnv)
	if def == "" {
		def = client.DefaultBroker
	}
	cmd.PersistentFlags().StringVar(&f.brokers, "brokers", def,
		"broker `ADDRESSES` to reach the cluster through, HOST:PORT[,HOST:PORT...] (env "+brokersEnv+")")
	cmd.PersistentFlags().DurationVar(&f.timeout, "timeout", clientTimeoutDefault, timeoutUse)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
}

// dial connects to the brokers named by the flags.
func (f *clientFlags) dial(ctx context.Context) (*client.Client, error) {
	var addrs []string
	for _, a := range strings.Split(f.brokers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, usageError{errors.New("--brokers is empty")}
	}
	if f.timeout <= 0 {
		return nil, usageError{fmt.Errorf("--timeout %s: must be positive", f.timeout)}
	}
	dctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	cl, err := client.Dial(dctx, client.Config{Brokers: addrs, ClientID: "strata-cli"})
	switch {
	case err == nil:
		return cl, nil
	case errors.Is(ctx.Err(), context.Canceled):
		return nil, ctx.Err() // interrupted
	case dctx.Err() != nil:
		return nil, fmt.Errorf("no answer from %s within %s (--timeout)", strings.Join(addrs, ", "), f.timeout)
	}
	if cause := errors.Unwrap(err); cause != nil {
		err = cause
	}
	if parts, ok := joined(err); ok {
		err = oneLine(parts) // each broker's failure, on the one line
	}
	return nil, fmt.Errorf("cannot reach %s: %w", strings.Join(addrs, ", "), err)
}

// signalContext ends on SIGINT or SIGTERM, so a command stops cleanly.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// interruptContext ends on SIGINT or SIGTERM like signalContext, and
// caught tells which signal ended it (nil while none has).
func interruptContext() (ctx context.Context, stop func(), caught func() os.Signal) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var mu sync.Mutex
	var sig os.Signal
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			mu.Lock()
			sig = s
			mu.Unlock()
			cancel()
		case <-done:
		}
	}()
	stop = func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
	caught = func() os.Signal {
		mu.Lock()
		defer mu.Unlock()
		return sig
	}
	return ctx, stop, caught
}

// args checks a command's positional arguments, as a usage error.
func args(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != n {
			return usageError{fmt.Errorf("expected %s, got %d arguments", what, len(a))}
		}
		return nil
	}
}

func clusterCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster"}
	addClientFlags(cmd, &f, timeoutAdminUse)
	cmd.AddCommand(&cobra.Command{
		Use:   "describe",
		Short: "Show the cluster id, the brokers (live or fenced), the controller quorum (each voter's log end and lag), the under-replicated and unavailable partitions, and each broker's log folder",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cl, done, err := f.admin()
			if err != nil {
				return err
			}
			defer done()
			admin := client.NewAdmin(cl)
			info, err := admin.DescribeCluster(ctx)
			if err != nil {
				return failedOp("describe cluster", err)
			}
			quorum, err := admin.DescribeQuorum(ctx)
			if err != nil {
				return failedOp("describe the controller quorum", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "cluster id: %s\ncontroller: %d\n", info.ClusterID, info.ControllerID)
			w := newTable(out)
			fmt.Fprintln(w, "NODE\tADDRESS\tRACK\tSTATUS")
			sort.Slice(info.Brokers, func(i, j int) bool { return info.Brokers[i].NodeID < info.Brokers[j].NodeID })
			for _, b := range info.Brokers {
				status := "live"
				if b.Fenced {
					status = "fenced"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", b.NodeID, b.Addr(), b.Rack, status)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "\ncontroller quorum: leader %d, term %d, commit index %d, log end %d, metadata records %d\n",
				quorum.LeaderID, quorum.Term, quorum.CommitIndex, quorum.LogEnd, quorum.MetadataOffset)
			w = newTable(out)
			fmt.Fprintln(w, "VOTER\tLOG END\tLAG\tACTIVE")
			for _, v := range quorum.Voters {
				fmt.Fprintf(w, "%d\t%d\t%d\t%v\n", v.ID, v.LogEnd, v.Lag, v.Active)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			topics, err := admin.DescribeTopics(ctx)
			if err != nil {
				return failedOp("describe the partitions", err)
			}
			if err := replicationTables(out, topics); err != nil {
				return err
			}
			return logDirsTable(ctx, admin, out, info.Brokers)
		},
	})
	explainTimeouts(cmd, &f)
	return cmd
}

// admin dials the brokers for one admin command: the context ends on
// Ctrl-C, SIGTERM or --timeout, and done closes the client.
func (f *clientFlags) admin() (context.Context, *client.Client, func(), error) {
	sctx, stop := signalContext()
	ctx, cancel := context.WithTimeoutCause(sctx, f.timeout, errAdminTimeout{f.timeout})
	cl, err := f.dial(ctx)
	if err != nil {
		cancel()
		stop()
		return nil, nil, nil, err
	}
	f.adminCtx = ctx
	return ctx, cl, func() { cl.Close(); cancel(); stop() }, nil
}

// explainTimeouts makes the admin subcommands of cmd end with the timeout,
// naming the brokers, when --timeout is what stopped them, rather than with
// whatever the request in flight failed with.
func explainTimeouts(cmd *cobra.Command, f *clientFlags) {
	for _, sub := range cmd.Commands() {
		run := sub.RunE
		sub.RunE = func(c *cobra.Command, a []string) error {
			err := run(c, a)
			if err != nil && f.adminCtx != nil {
				if cause, ok := context.Cause(f.adminCtx).(errAdminTimeout); ok {
					return fmt.Errorf("%s: %w", f.brokers, cause)
				}
			}
			return err
		}
	}
}

// errAdminTimeout is the cause of an admin command's context ending at
// --timeout.
type errAdminTimeout struct{ timeout time.Duration }

func (e errAdminTimeout) Error() string {
	return fmt.Sprintf("no answer within %s (--timeout)", e.timeout)
}
