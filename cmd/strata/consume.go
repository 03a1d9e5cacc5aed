package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// startAt is where --from places the consumer.
type startAt struct {
	kind   string // "earliest", "latest", "offset", "time"
	offset int64
	time   time.Time
}

// parseFrom reads --from: earliest, latest, an offset, or @TIME with TIME
// in RFC 3339 or unix milliseconds.
func parseFrom(s string) (startAt, error) {
	switch s {
	case "earliest", "latest":
		return startAt{kind: s}, nil
	}
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		if ms, err := strconv.ParseInt(rest, 10, 64); err == nil && ms >= 0 {
			return startAt{kind: "time", time: time.UnixMilli(ms)}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, rest)
		if err != nil {
			return startAt{}, fmt.Errorf("--from %q: after @ want RFC 3339 time or unix milliseconds", s)
		}
		return startAt{kind: "time", time: t}, nil
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil || off < 0 {
		return startAt{}, fmt.Errorf("--from %q: want earliest, latest, an offset or @TIME", s)
	}
	return startAt{kind: "offset", offset: off}, nil
}

// jsonRecord is one record in --format json.
type jsonRecord struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"` // unix milliseconds
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   []jsonHeader `json:"headers"`
}

type jsonHeader struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// text is b as a JSON string, or null for nil bytes. Bytes that are not
// UTF-8 come out with replacement characters; raw bytes need another tool.
func text(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return &s
}

func consumeCommand() *cobra.Command {
	var f clientFlags
	var from, format string
	var count int64
	var partition int32
	var exitAtEnd bool
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic",
		Long: `Print records of TOPIC, one per line: the value in text format, or a JSON
object with topic, partition, offset, timestamp (unix ms), key, value and
headers in json format. Runs until interrupted, until --count records, or
with --exit-at-end until it reaches the log end as it was at the start.`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			at, err := parseFrom(from)
			if err != nil {
				return usageError{err}
			}
			if format != "text" && format != "json" {
				return usageError{fmt.Errorf("--format %q: want text or json", format)}
			}
			if count < 0 {
				return usageError{fmt.Errorf("--count %d: must not be negative", count)}
			}
			ctx, cancel := signalContext()
			defer cancel()
			cl, err := f.dial(ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			return consume(ctx, cl, cmd.OutOrStdout(), a[0], partition, at, format, count, exitAtEnd)
		},
	}
	addClientFlags(cmd, &f)
	cmd.Flags().StringVar(&from, "from", "latest", "earliest, latest, OFFSET or @TIME (RFC 3339 or unix ms)")
	cmd.Flags().Int64Var(&count, "count", 0, "exit after this many records (0: no limit)")
	cmd.Flags().Int32Var(&partition, "partition", client.AllPartitions, "read only this partition (default: all)")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	cmd.Flags().BoolVar(&exitAtEnd, "exit-at-end", false, "exit once caught up with the log end as of the start")
	return cmd
}

func consume(ctx context.Context, cl *client.Client, w io.Writer, topic string, partition int32, at startAt,
	format string, count int64, exitAtEnd bool) error {
	all, err := cl.Partitions(ctx, topic)
	if err != nil {
		return err
	}
	parts := all
	if partition != client.AllPartitions {
		if partition < 0 || int(partition) >= len(all) {
			return fmt.Errorf("topic %s has no partition %d (it has %d)", topic, partition, len(all))
		}
		parts = []int32{partition}
	}
	c := client.NewConsumer(cl, client.ConsumerConfig{Reset: client.ResetEarliest})
	defer c.Close()
	if err := c.Assign(topic, parts...); err != nil {
		return err
	}
	switch at.kind {
	case "earliest":
		err = c.SeekToEarliest(ctx, topic, parts...)
	case "latest":
		err = c.SeekToLatest(ctx, topic, parts...)
	case "time":
		err = c.SeekToTime(ctx, topic, at.time, parts...)
	case "offset":
		for _, p := range parts {
			c.Seek(topic, p, at.offset)
		}
	}
	if err != nil {
		return err
	}
	var ends map[int32]int64
	if exitAtEnd {
		if ends, err = cl.ListOffsets(ctx, topic, parts, client.OffsetLatest); err != nil {
			return err
		}
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	var n int64
	for {
		if exitAtEnd && caughtUp(c, topic, ends) {
			return nil
		}
		recs, err := c.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: a normal way to stop
			}
			return err
		}
		for _, r := range recs {
			if format == "json" {
				jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(),
					Key: text(r.Key), Value: text(r.Value), Headers: []jsonHeader{}}
				for _, h := range r.Headers {
					jr.Headers = append(jr.Headers, jsonHeader{Key: string(h.Key), Value: text(h.Value)})
				}
				if err := enc.Encode(&jr); err != nil {
					return err
				}
			} else {
				bw.Write(r.Value)
				bw.WriteByte('\n')
			}
			n++
			if count > 0 && n >= count {
				return bw.Flush()
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

// caughtUp reports whether every partition's position reached its end.
func caughtUp(c *client.Consumer, topic string, ends map[int32]int64) bool {
	for p, end := range ends {
		pos, ok := c.Position(topic, p)
		if !ok || pos < end {
			return false
		}
	}
	return true
}
