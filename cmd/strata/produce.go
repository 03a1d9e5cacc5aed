package main

import (
	"bufio"
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// produceLineBytesMax bounds one stdin line (one record).
const produceLineBytesMax = 16 << 20

func produceCommand() *cobra.Command {
	var f clientFlags
	var keySep, acks string
	var lz4 bool
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Send each line of stdin as one record",
		Long: `Send each line of stdin as one record of TOPIC. With --key-separator, the
text before the first separator is the record's key and the rest its value;
a line without the separator has no key.`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg := client.ProducerConfig{}
			switch acks {
			case "all", "-1":
				cfg.Acks = client.AcksAll
			case "1", "leader":
				cfg.Acks = client.AcksLeader
			case "0", "none":
				cfg.Acks = client.AcksNone
			default:
				return usageError{fmt.Errorf("--acks %q: want all, 1 or 0", acks)}
			}
			if lz4 {
				cfg.Compression = client.CompressionLZ4
			}
			ctx, cancel := signalContext()
			defer cancel()
			cl, err := f.dial(ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			p, err := client.NewProducer(cl, cfg)
			if err != nil {
				return err
			}
			var mu sync.Mutex
			var firstErr error
			var sent int
			cb := func(_ int32, _ int64, err error) {
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64<<10), produceLineBytesMax)
			for sc.Scan() {
				line := sc.Bytes()
				r := client.Record{Topic: a[0]}
				if keySep != "" {
					if k, v, ok := strings.Cut(string(line), keySep); ok {
						r.Key, r.Value = []byte(k), []byte(v)
					} else {
						r.Value = line
					}
				} else {
					r.Value = line
				}
				if err := p.Send(ctx, &r, cb); err != nil {
					_ = p.Close(ctx)
					return err
				}
				sent++
			}
			closeErr := p.Close(ctx)
			if err := sc.Err(); err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if firstErr != nil {
				return firstErr
			}
			if closeErr != nil {
				return closeErr
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "produced %d records to %s\n", sent, a[0])
			return nil
		},
	}
	addClientFlags(cmd, &f)
	cmd.Flags().StringVar(&keySep, "key-separator", "", "split each line into key and value at the first SEP")
	cmd.Flags().StringVar(&acks, "acks", "all", "all (-1), 1 or 0")
	cmd.Flags().BoolVar(&lz4, "lz4", false, "compress batches with lz4")
	return cmd
}
