package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema"
)

const (
	// produceLineBytesMax bounds one stdin line (one record): the largest
	// batch body a record can travel in.
	produceLineBytesMax = schema.BodyBytesMax
	// produceCloseWaitMs bounds the wait for records already read to be
	// acknowledged once produce is interrupted.
	produceCloseWaitMs = 10_000
)

// produceOptions are the produce command's flags.
type produceOptions struct {
	keySep, key, acks, compression string
	format                         string
	headers                        []string
	partition                      int32
	lz4                            bool
}

// producerConfig checks the flags and turns them into the producer's
// settings and the record every line starts from.
func (o *produceOptions) producerConfig(topic string) (client.ProducerConfig, client.Record, error) {
	cfg := client.ProducerConfig{}
	base := client.Record{Topic: topic, Partition: o.partition}
	switch o.acks {
	case "all", "-1":
		cfg.Acks = client.AcksAll
	case "1", "leader":
		cfg.Acks = client.AcksLeader
	case "0", "none":
		cfg.Acks = client.AcksNone
	default:
		return cfg, base, usageError{fmt.Errorf("--acks %q: want all, 1 or 0", o.acks)}
	}
	compression := o.compression
	if o.lz4 {
		compression = "lz4"
	}
	switch compression {
	case "none":
		cfg.Compression = client.CompressionNone
	case "lz4":
		cfg.Compression = client.CompressionLZ4
	default:
		return cfg, base, usageError{fmt.Errorf("--compression %q: want none or lz4", o.compression)}
	}
	if o.partition != client.AllPartitions {
		if o.partition < 0 {
			return cfg, base, usageError{fmt.Errorf("--partition %d: want a partition number", o.partition)}
		}
		cfg.ManualPartitions = true
	}
	switch o.format {
	case "text":
	case "json":
		if o.keySep != "" {
			return cfg, base, usageError{errors.New("--key-separator and --format json: give one")}
		}
		// Each line may name its partition, so the command places every
		// record itself.
		cfg.ManualPartitions = true
	default:
		return cfg, base, usageError{fmt.Errorf("--format %q: want text or json", o.format)}
	}
	if o.key != "" && o.keySep != "" {
		return cfg, base, usageError{errors.New("--key and --key-separator: give one")}
	}
	if o.key != "" {
		base.Key = []byte(o.key)
	}
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return cfg, base, usageError{fmt.Errorf("--header %q: want key=value", h)}
		}
		base.Headers = append(base.Headers, client.Header{Key: []byte(k), Value: []byte(v)})
	}
	return cfg, base, nil
}

// record is one line as a record: base with the line's key and value.
func (o *produceOptions) record(base client.Record, line []byte) *client.Record {
	r := base
	r.Value = line
	if o.keySep != "" {
		if k, v, ok := strings.Cut(string(line), o.keySep); ok {
			r.Key, r.Value = []byte(k), []byte(v)
		}
	}
	return &r
}

func produceCommand() *cobra.Command {
	var f clientFlags
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Send each line of stdin as one record",
		Long: `Send each line of stdin as one record of TOPIC. With --key-separator, the
text before the first separator is the record's key and the rest its value;
a line without the separator has no key. A record goes to the partition of
its key (murmur2, as Kafka's producer), to a sticky partition without one,
or to --partition.

With --format json, each line is a JSON object as consume --format json
prints it: key, value and header values as text, or base64 or hex with
key_encoding, value_encoding or a header's value_encoding saying so; null
for a null key or value; an optional partition (else --partition, else by
key, else round robin) and timestamp (unix ms). Its topic and offset, if
present, are not used. So consume's output can be produced again as it
was.

Ctrl-C or SIGTERM stops reading stdin; the records already read are still
delivered (for up to 10 s) and counted before produce exits with 130
(SIGINT) or 143 (SIGTERM).`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg, base, err := o.producerConfig(a[0])
			if err != nil {
				return err
			}
			return produce(cmd, &f, &o, cfg, base)
		},
	}
	addClientFlags(cmd, &f, timeoutStreamUse)
	fl := cmd.Flags()
	fl.StringVar(&o.keySep, "key-separator", "", "split each line into key and value at the first `SEP`")
	fl.StringVarP(&o.key, "key", "k", "", "the `KEY` of every record")
	fl.StringArrayVarP(&o.headers, "header", "H", nil, "a header `KEY=VALUE` on every record (repeatable)")
	fl.Int32VarP(&o.partition, "partition", "p", client.AllPartitions, "send every record to partition `N` (-1: by key, or a sticky partition for records without one)")
	fl.StringVar(&o.acks, "acks", "all", "wait for the in-sync replicas (all, -1), the leader (1, leader) or nothing (0, none)")
	fl.StringVar(&o.compression, "compression", "none", "batch compression: none or lz4")
	fl.StringVarP(&o.format, "format", "f", "text", "stdin lines as text, or as json records (see above)")
	fl.BoolVar(&o.lz4, "lz4", false, "same as --compression lz4")
	_ = fl.MarkHidden("lz4")
	return cmd
}

// produce sends stdin's lines until its end or a signal, then waits for the
// records read to be delivered and reports how many were.
func produce(cmd *cobra.Command, f *clientFlags, o *produceOptions, cfg client.ProducerConfig, base client.Record) error {
	ctx, stop, caught := interruptContext()
	defer stop()
	cl, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	p, err := client.NewProducer(cl, cfg)
	if err != nil {
		return failed(fmt.Sprintf("produce to %q", base.Topic), base.Topic, err)
	}
	var mu sync.Mutex
	var firstErr error
	var acked int
	cb := func(_ int32, _ int64, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			acked++
		} else if firstErr == nil {
			firstErr = err
		}
	}
	var parts *jsonPartitioner
	if o.format == "json" {
		ids, err := cl.Partitions(ctx, base.Topic)
		if err != nil {
			return failed(fmt.Sprintf("produce to %q", base.Topic), base.Topic, err)
		}
		parts = &jsonPartitioner{fixed: o.partition, count: int32(len(ids))}
	}
	lines, readErr := readLines(ctx, cmd.InOrStdin())
	var sendErr error
read:
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			break read
		case line, ok := <-lines:
			if !ok {
				break read
			}
			r := o.record(base, line)
			if parts != nil {
				if len(bytes.TrimSpace(line)) == 0 {
					continue // a blank line between JSON records
				}
				if r, sendErr = parseJSONRecord(base, line, n, parts); sendErr != nil {
					break read
				}
			}
			if sendErr = p.Send(ctx, r, cb); sendErr != nil {
				break read
			}
		}
	}
	// What was read is delivered even after a signal: the signal's context
	// has ended, so the wait gets its own bound.
	closeCtx, cancel := context.WithTimeout(context.Background(), produceCloseWaitMs*time.Millisecond)
	defer cancel()
	closeErr := p.Close(closeCtx)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case caught() != nil:
		err = interrupted{caught()}
	case sendErr != nil:
		err = sendErr
	case firstErr != nil:
		err = firstErr
	case closeErr != nil:
		err = closeErr
	default:
		err = <-readErr
	}
	// The count is news on success, on a signal, and after a failure that
	// came once some records were in.
	if _, stopped := err.(interrupted); err == nil || stopped || acked > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "produced %s to %s\n", plural(acked, "record"), base.Topic)
	}
	return failed(fmt.Sprintf("produce to %q", base.Topic), base.Topic, err)
}

// readLines reads r line by line (without the line end) onto the channel
// until r ends, fails or ctx ends. The error channel gets the read error,
// or nil, once the lines channel is closed.
func readLines(ctx context.Context, r io.Reader) (<-chan []byte, <-chan error) {
	lines := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(lines)
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			line, err := readLine(br, n)
			if line != nil {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					errc <- err
				}
				return
			}
		}
	}()
	return lines, errc
}

// readLine reads line n: its bytes without "\n" (or "\r\n"), nil at the
// end of input. A line longer than produceLineBytesMax is an error, found
// before more than that is held.
func readLine(br *bufio.Reader, n int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > produceLineBytesMax+2 {
			return nil, fmt.Errorf("stdin line %d is longer than the largest record (%d bytes)", n, produceLineBytesMax)
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) == 0 {
			return nil, io.EOF
		}
		line = trimLineEnd(line)
		if len(line) > produceLineBytesMax {
			return nil, fmt.Errorf("stdin line %d is longer than the largest record (%d bytes)", n, produceLineBytesMax)
		}
		if line == nil {
			line = []byte{}
		}
		return line, err
	}
}

// trimLineEnd drops a line's "\n" or "\r\n", as a line scanner does.
func trimLineEnd(b []byte) []byte {
	return bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
}

// plural is "1 record" or "n records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// interrupted ends a command stopped by a signal: exit 128 + the signal.
type interrupted struct{ sig os.Signal }

func (e interrupted) Error() string { return "interrupted by " + e.sig.String() }
