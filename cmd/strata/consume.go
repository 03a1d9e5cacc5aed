package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/schema/fb"
)

// topicCheckInterval is how often a running consume asks whether its
// topic still exists: a deleted topic ends it with an error rather than
// leaving it waiting for ever.
const topicCheckInterval = 2 * time.Second

// startAt is where --from places the consumer in each partition.
type startAt struct {
	kind   string // "earliest", "latest", "offset", "back" (N before the end), "time"
	offset int64
	time   time.Time
}

// parseFrom reads --from: earliest, latest, an offset, -N (N records
// before the end), or @TIME with TIME in RFC 3339 or unix milliseconds.
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
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n <= 0 {
			return startAt{}, fmt.Errorf("--from %q: after - want a count of records before the end, at least 1", s)
		}
		return startAt{kind: "back", offset: n}, nil
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil || off < 0 {
		return startAt{}, fmt.Errorf("--from %q: want earliest, latest, an offset, -N or @TIME", s)
	}
	return startAt{kind: "offset", offset: off}, nil
}

// consumeOptions are the consume command's flags, checked.
type consumeOptions struct {
	topic     string
	partition int32
	at        startAt
	printer   recordPrinter
	count     int64
	exitAtEnd bool
	warn      io.Writer // where out-of-range starts are reported
	group     string    // consume as a member of this group
}

func consumeCommand() *cobra.Command {
	var f clientFlags
	var from, format, encoding string
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic",
		Long: `Print records of TOPIC, one per line: the value in text format; a JSON
object with topic, partition, offset, timestamp (unix ms), key, value and
headers in json format; or a format string of verbs:
  %t topic  %p partition  %o offset  %k key  %v value
  %h headers (k=v,k=v)  %T timestamp (unix ms)  %% a percent sign
  \n a line end  \t a tab  \\ a backslash
e.g. --format '%p/%o %k=%v\n'. Keys and values are written as they are
(--value-encoding auto), or as base64 or hex; in JSON, auto writes bytes
that are not UTF-8 as base64 and adds key_encoding or value_encoding.

--from places every partition: earliest, latest, an offset, -N (N records
before the end), or @TIME. An offset outside a partition's log is reported
with its log start and end, and reading starts at the nearer of the two.
Runs until interrupted (Ctrl-C exits 0), until --count records, or with
--exit-at-end until every partition reaches its log end as it was at the
start. A topic deleted while it is read ends consume with an error.

With --group, consume joins GROUP as a member: the group's coordinator
assigns it partitions of TOPIC (sharing them with the group's other
members), each read from the group's committed offset; --from (earliest or
latest, default latest) places partitions that have none. The offsets after
the records printed are committed every 5 seconds, when a partition is taken
away, and at exit, so the next member of the group goes on from there.`,
		Args: args(1, "the topic name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			var err error
			if o.at, err = parseFrom(from); err != nil {
				return usageError{err}
			}
			if o.printer, err = newPrinter(format, encoding); err != nil {
				return usageError{err}
			}
			if o.count < 0 {
				return usageError{fmt.Errorf("--count %d: must not be negative", o.count)}
			}
			if o.group != "" {
				if err := groupConsumeFlags(cmd, &o); err != nil {
					return err
				}
			}
			o.topic, o.warn = a[0], cmd.ErrOrStderr()
			ctx, cancel := signalContext()
			defer cancel()
			cl, err := f.dial(ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			if o.group != "" {
				err = consumeGroup(ctx, cl, cmd.OutOrStdout(), &o)
			} else {
				err = consume(ctx, cl, cmd.OutOrStdout(), &o)
			}
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // interrupted: a normal way to stop
			}
			return failed(fmt.Sprintf("consume %q", o.topic), o.topic, err)
		},
	}
	addClientFlags(cmd, &f, timeoutStreamUse)
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "latest", "start each partition at `POSITION`: earliest, latest, OFFSET, -N (N before the end) or @TIME (RFC 3339 or unix ms)")
	fl.Int64VarP(&o.count, "count", "c", 0, "exit after `N` records (0: no limit)")
	fl.Int32VarP(&o.partition, "partition", "p", client.AllPartitions, "read only partition `N` (-1: all)")
	fl.StringVarP(&format, "format", "f", "text", "output `FORMAT`: text, json, or a format string such as '%k=%v\\n' (see above)")
	fl.StringVar(&encoding, "value-encoding", encodingAuto, "write keys and values in `ENCODING`: auto, text, base64 or hex")
	fl.BoolVarP(&o.exitAtEnd, "exit-at-end", "e", false, "exit once every partition reaches its log end as of the start")
	fl.StringVarP(&o.group, "group", "g", "", "consume as a member of consumer group `GROUP`, from its committed offsets, committing what is printed")
	return cmd
}

// partitionRange is what consume knows of one partition at the start.
type partitionRange struct {
	start, end, from int64
}

// startPositions finds each partition's log start and end and where
// --from places it, reporting a start outside the log.
func startPositions(ctx context.Context, cl *client.Client, o *consumeOptions, parts []int32) (map[int32]*partitionRange, error) {
	starts, err := cl.ListOffsets(ctx, o.topic, parts, client.OffsetEarliest)
	if err != nil {
		return nil, err
	}
	ends, err := cl.ListOffsets(ctx, o.topic, parts, client.OffsetLatest)
	if err != nil {
		return nil, err
	}
	var byTime map[int32]int64
	if o.at.kind == "time" {
		if byTime, err = cl.TimeOffsets(ctx, o.topic, parts, o.at.time); err != nil {
			return nil, err
		}
	}
	out := map[int32]*partitionRange{}
	for _, p := range parts {
		r := &partitionRange{start: starts[p], end: ends[p]}
		switch o.at.kind {
		case "earliest":
			r.from = r.start
		case "latest":
			r.from = r.end
		case "back":
			r.from = max(r.start, r.end-o.at.offset)
		case "time":
			r.from = r.end // no record at or after the time
			if off, ok := byTime[p]; ok && off >= 0 {
				r.from = off
			}
		case "offset":
			r.from = o.at.offset
			switch {
			case r.from > r.end:
				fmt.Fprintf(o.warn, "strata: partition %d: offset %d is past the log end %d (log start %d); reading from %d\n",
					p, r.from, r.end, r.start, r.end)
				r.from = r.end
			case r.from < r.start:
				fmt.Fprintf(o.warn, "strata: partition %d: offset %d is before the log start %d (log end %d); reading from %d\n",
					p, r.from, r.start, r.end, r.start)
				r.from = r.start
			}
		}
		out[p] = r
	}
	return out, nil
}

func consume(ctx context.Context, cl *client.Client, w io.Writer, o *consumeOptions) error {
	all, err := cl.Partitions(ctx, o.topic)
	if err != nil {
		return err
	}
	parts := all
	if o.partition != client.AllPartitions {
		if o.partition < 0 || int(o.partition) >= len(all) {
			return fmt.Errorf("topic %s has no partition %d (it has %d)", o.topic, o.partition, len(all))
		}
		parts = []int32{o.partition}
	}
	ranges, err := startPositions(ctx, cl, o, parts)
	if err != nil {
		return err
	}
	// With --exit-at-end, only partitions with records before their end
	// are read, and each leaves the assignment once it reaches its end:
	// a consumer waiting on a partition with nothing to read would wait
	// for ever.
	reading := parts
	if o.exitAtEnd {
		reading = nil
		for _, p := range parts {
			if r := ranges[p]; r.from < r.end {
				reading = append(reading, p)
			}
		}
		if len(reading) == 0 {
			return nil
		}
	}
	c := client.NewConsumer(cl, client.ConsumerConfig{Reset: client.ResetEarliest})
	defer c.Close()
	if err := c.Assign(o.topic, reading...); err != nil {
		return err
	}
	for _, p := range reading {
		c.Seek(o.topic, p, ranges[p].from)
	}
	pollCtx, stopWatch := watchTopic(ctx, cl, o.topic)
	defer stopWatch()
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	var n int64
	for {
		recs, err := c.Poll(pollCtx)
		if err != nil {
			if cause := context.Cause(pollCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			}
			bw.Flush()
			return err
		}
		for i := range recs {
			r := &recs[i]
			if o.exitAtEnd && r.Offset >= ranges[r.Partition].end {
				continue // written after the start: past this run's end
			}
			if err := o.printer.print(bw, r); err != nil {
				return err
			}
			if n++; o.count > 0 && n >= o.count {
				return bw.Flush()
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if o.exitAtEnd {
			// Positions, not the last offsets seen: a compacted log may
			// have no record just before its end.
			left := stillReading(c, o.topic, reading, ranges)
			if len(left) == 0 {
				return nil
			}
			if len(left) < len(reading) {
				reading = left
				if err := c.Assign(o.topic, reading...); err != nil {
					return err
				}
			}
		}
	}
}

// stillReading is the partitions whose position has not reached its end.
func stillReading(c *client.Consumer, topic string, reading []int32, ranges map[int32]*partitionRange) []int32 {
	var left []int32
	for _, p := range reading {
		if pos, ok := c.Position(topic, p); !ok || pos < ranges[p].end {
			left = append(left, p)
		}
	}
	return left
}

// errTopicDeleted ends a consume whose topic was deleted.
type errTopicDeleted struct{ topic string }

func (e errTopicDeleted) Error() string { return "topic " + e.topic + " was deleted" }

// watchTopic returns a context that ends, with errTopicDeleted as its
// cause, when the topic no longer exists; it asks every
// topicCheckInterval. The consumer itself retries an unknown topic, as a
// partition that moves between leaders is briefly unknown too.
func watchTopic(ctx context.Context, cl *client.Client, topic string) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	admin := client.NewAdmin(cl)
	go func() {
		t := time.NewTicker(topicCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			_, err := admin.DescribeTopics(wctx, topic)
			if client.ErrorCode(err) == fb.ErrorCodeUnknownTopicOrPartition {
				cancel(errTopicDeleted{topic})
				return
			}
		}
	}()
	return wctx, func() { cancel(nil) }
}
