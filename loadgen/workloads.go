package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-db/strata/client"
)

// The client workloads.
const (
	workloadProduce = "produce"
	workloadConsume = "consume"
	workloadE2E     = "e2e"

	flagFill = "fill"

	// defaultE2ERate is e2e's --rate: a steady load well inside what one
	// producer sustains, so the latency measured is not queueing.
	defaultE2ERate = 10_000
)

// What each client workload's latency measures.
const (
	latencyOfProduce = "record: Send called until its acknowledgement callback ran"
	latencyOfConsume = "poll: one Poll call, from the call until it returned records"
	latencyOfE2E     = "record: send time stamped in the value until a consumer holds it"
)

var (
	errNothingAcked = errors.New("no record was acknowledged")
	errEmptyTopic   = errors.New("the topic holds no records to read (--fill writes some first)")
)

// clientCommand builds a client workload's command: shared validation, then
// the workload, then the report.
func clientCommand(wf *workloadFlags, f *clientFlags, which int, use, short, long string,
	extra func(*cobra.Command) error,
	work func(ctx context.Context, stderr io.Writer) (*report, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := wf.resolve(cmd.Flags()); err != nil {
				return err
			}
			if err := f.validate(which); err != nil {
				return err
			}
			if extra != nil {
				if err := extra(cmd); err != nil {
					return err
				}
			}
			defer f.useProcs()()
			r, err := work(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return runError{err}
			}
			if err := r.print(cmd.OutOrStdout(), wf.json); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	return cmd
}

func newProduceCmd(wf *workloadFlags) *cobra.Command {
	f := &clientFlags{}
	const which = withProducer | withRate
	cmd := clientCommand(wf, f, which, "produce",
		"Send records to a topic and measure throughput and send-to-acknowledgement latency",
		`Send records of --record-size bytes to --topic (created with --partitions and
--flush-policy when it does not exist) from --producers producers, each with
its own connection, until --records are acknowledged or --duration has passed.
Records have no key, so each producer fills one partition's batch at a time
(sticky partitioning) and moves on.

Throughput counts acknowledged records, from the first send to the last
acknowledgement. Latency is per record: from the Send call until its
callback ran (with --acks 0, until the batch was written to the socket).`,
		nil,
		func(ctx context.Context, stderr io.Writer) (*report, error) {
			return runProduce(ctx, wf, f, stderr)
		})
	f.register(cmd.Flags(), which, "loadgen-produce")
	return cmd
}

// runProduce is `loadgen produce`.
func runProduce(ctx context.Context, wf *workloadFlags, f *clientFlags, stderr io.Writer) (*report, error) {
	cl, err := client.Dial(ctx, f.clientConfig())
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", f.brokers, err)
	}
	defer cl.Close()
	st, err := ensureTopic(ctx, cl, f)
	if err != nil {
		return nil, err
	}
	recordSize := int64(wf.recordSizeBytes)
	prog := newProgress(stderr, "produce", wf.limitBytes())
	start := time.Now()
	res, err := newProduceJob(wf, f, start, prog).run(ctx, start)
	prog.finish()
	if err != nil {
		return nil, err
	}
	if res.acked == 0 {
		return nil, errNothingAcked
	}
	r := newClientReport(workloadProduce, "produce: records sent to the broker by the client library",
		f, withProducer|withRate, st, recordSize, start)
	r.LatencyOf = latencyOfProduce
	r.StoppedBy = string(res.stoppedBy)
	r.fillCounts(res.acked, res.bytes, recordSize, res.elapsed, res.latency.summary())
	return r, nil
}

// newProduceJob is the producers the flags describe, their clock based at
// start.
func newProduceJob(wf *workloadFlags, f *clientFlags, start time.Time, prog *progress) *produceJob {
	j := &produceJob{
		cfg:        f.clientConfig(),
		pcfg:       f.producerConfig(),
		topic:      f.topic,
		producers:  f.producers,
		recordSize: int64(wf.recordSizeBytes),
		values:     f.values,
		records:    wf.records,
		rate:       f.rate,
		clock:      monoClock{base: start},
		progress:   prog,
	}
	if wf.duration > 0 {
		j.deadline = start.Add(wf.duration)
	}
	return j
}

func newConsumeCmd(wf *workloadFlags) *cobra.Command {
	f := &clientFlags{}
	var fill bool
	const which = withProducer | withConsumer
	cmd := clientCommand(wf, f, which, "consume",
		"Read a topic from its start and measure throughput",
		`Read --topic from the log start with --consumers consumers, each with its own
connection and a share of the partitions, until every consumer reached the
log end it found when it started, --records were read, or --duration passed.

With --fill, the topic is first created if needed and filled by the
producers (the producer flags apply) with --records records, or for
--duration; the fill is not part of the figures.

Throughput counts the value bytes read, from the first Poll to the last
record. Latency is per Poll call: how long it took to return records.`,
		nil,
		func(ctx context.Context, stderr io.Writer) (*report, error) {
			return runConsume(ctx, wf, f, fill, stderr)
		})
	f.register(cmd.Flags(), which, "loadgen-consume")
	cmd.Flags().BoolVar(&fill, flagFill, false, "create the topic if needed and fill it with records before reading")
	return cmd
}

// runConsume is `loadgen consume`.
func runConsume(ctx context.Context, wf *workloadFlags, f *clientFlags, fill bool, stderr io.Writer) (*report, error) {
	cl, err := client.Dial(ctx, f.clientConfig())
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", f.brokers, err)
	}
	defer cl.Close()
	var st topicState
	var filled *produceResult
	if fill {
		st, err = ensureTopic(ctx, cl, f)
		if err != nil {
			return nil, err
		}
		prog := newProgress(stderr, "fill", wf.limitBytes())
		start := time.Now()
		res, err := newProduceJob(wf, f, start, prog).run(ctx, start)
		prog.finish()
		if err != nil {
			return nil, fmt.Errorf("fill: %w", err)
		}
		filled = &res
	} else {
		parts, err := cl.Partitions(ctx, f.topic)
		if err != nil {
			return nil, fmt.Errorf("topic %s: %w", f.topic, err)
		}
		st.partitions = parts
	}
	r, err := consumeTopic(ctx, wf, f, st, stderr)
	if err != nil {
		return nil, err
	}
	if filled != nil {
		r.Produced = filled.acked
		r.rows = append(r.rows, summaryRow{"filled with", fmt.Sprintf("%d records at %.1f MB/s (not part of the figures)",
			filled.acked, float64(filled.bytes)/bytesPerMB/filled.elapsed.Seconds())})
	}
	return r, nil
}

// consumeTopic reads a topic from its start to its end (or the limits of
// wf) and reports it.
func consumeTopic(ctx context.Context, wf *workloadFlags, f *clientFlags, st topicState, stderr io.Writer) (*report, error) {
	start := time.Now()
	job := &consumeJob{
		cfg:        f.clientConfig(),
		ccfg:       client.ConsumerConfig{Reset: client.ResetEarliest, ReuseFetchBuffers: true},
		topic:      f.topic,
		partitions: st.partitions,
		consumers:  f.consumers,
		records:    wf.records,
		untilEnd:   true,
		clock:      monoClock{base: start},
		progress:   newProgress(stderr, "consume", wf.limitBytes()),
	}
	if wf.duration > 0 {
		job.deadline = start.Add(wf.duration)
	}
	run, err := job.open(ctx)
	if err != nil {
		job.progress.finish()
		return nil, err
	}
	defer run.close()
	// The clock starts once the consumers are connected and positioned.
	start = time.Now()
	job.clock = monoClock{base: start}
	res, err := run.run(start)
	job.progress.finish()
	if err != nil {
		return nil, err
	}
	if res.records == 0 {
		return nil, errEmptyTopic
	}
	recordSize := res.bytes / res.records
	r := newClientReport(workloadConsume, "consume: a topic read from its start by the client library",
		f, withConsumer, st, recordSize, start)
	r.LatencyOf = latencyOfConsume
	r.StoppedBy = string(res.stoppedBy)
	r.fillCounts(res.records, res.bytes, recordSize, res.elapsed, res.latency.summary())
	if res.bytes%res.records != 0 {
		r.rows = append(r.rows, summaryRow{"record size", fmt.Sprintf("records differ in size; %d B is the mean, rounded down", recordSize)})
	}
	return r, nil
}

func newE2ECmd(wf *workloadFlags) *cobra.Command {
	f := &clientFlags{rate: defaultE2ERate}
	const which = withProducer | withConsumer | withRate
	cmd := clientCommand(wf, f, which, "e2e",
		"Measure end-to-end latency at a target rate: producer send to consumer receipt",
		`Produce records at --rate records per second (across --producers) while
--consumers consumers, positioned at the log end before the first record is
sent, read them. Each value starts with the time it was sent (8 bytes, this
process's monotonic clock); the consumer records now minus that stamp. The
run stops sending after --records or --duration and ends when the consumers
have read every acknowledged record.

The latency includes batching (--linger), the broker's flush policy (sync:
an fdatasync before the record is visible to consumers), the fetch wake-up
and delivery.`,
		func(*cobra.Command) error {
			if wf.recordSizeBytes < stampBytes {
				return fmt.Errorf("--%s must be at least %d bytes for e2e: each value carries its send time",
					flagRecordSize, stampBytes)
			}
			if f.rate == 0 {
				return fmt.Errorf("--%s must be above 0 for e2e: latency is measured at a target rate", flagRate)
			}
			return nil
		},
		func(ctx context.Context, stderr io.Writer) (*report, error) {
			return runE2E(ctx, wf, f, stderr)
		})
	f.register(cmd.Flags(), which, "loadgen-e2e")
	return cmd
}

// runE2E is `loadgen e2e`.
func runE2E(ctx context.Context, wf *workloadFlags, f *clientFlags, stderr io.Writer) (*report, error) {
	cl, err := client.Dial(ctx, f.clientConfig())
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", f.brokers, err)
	}
	defer cl.Close()
	st, err := ensureTopic(ctx, cl, f)
	if err != nil {
		return nil, err
	}
	cjob := &consumeJob{
		cfg:        f.clientConfig(),
		ccfg:       client.ConsumerConfig{Reset: client.ResetLatest, MinBytes: 1, ReuseFetchBuffers: true},
		topic:      f.topic,
		partitions: st.partitions,
		consumers:  f.consumers,
		fromLatest: true,
		stamped:    true,
	}
	crun, err := cjob.open(ctx)
	if err != nil {
		return nil, err
	}
	defer crun.close()

	recordSize := int64(wf.recordSizeBytes)
	prog := newProgress(stderr, "e2e", wf.limitBytes())
	start := time.Now()
	clock := monoClock{base: start}
	cjob.clock, cjob.progress = clock, prog
	pjob := newProduceJob(wf, f, start, &progress{})
	pjob.stamp, pjob.clock = true, clock

	type consumed struct {
		res consumeResult
		err error
	}
	done := make(chan consumed, 1)
	go func() {
		res, err := crun.run(start)
		done <- consumed{res, err}
	}()
	pres, perr := pjob.run(ctx, start)
	if perr != nil {
		crun.stop(stopInterrupted)
		<-done
		prog.finish()
		return nil, perr
	}
	crun.setTarget(pres.acked)
	var c consumed
	select {
	case c = <-done:
	case <-time.After(drainTimeout):
		crun.stop(stopInterrupted)
		c = <-done
		if c.err == nil {
			c.err = fmt.Errorf("consumers read %d of %d acknowledged records within %s", c.res.records, pres.acked, drainTimeout)
		}
	}
	prog.finish()
	if c.err != nil {
		return nil, c.err
	}
	if pres.acked == 0 {
		return nil, errNothingAcked
	}
	r := newClientReport(workloadE2E, "e2e: send to receipt through the broker at a target rate",
		f, withProducer|withConsumer|withRate, st, recordSize, start)
	r.LatencyOf = latencyOfE2E
	r.StoppedBy = string(pres.stoppedBy)
	r.fillCounts(c.res.records, c.res.bytes, recordSize, c.res.elapsed, c.res.latency.summary())
	ps := pres.latency.summary()
	r.Produced = pres.acked
	r.ProduceP50Ms, r.ProduceP99Ms = ps.p50Ms, ps.p99Ms
	r.rows = append(r.rows,
		summaryRow{"produced", fmt.Sprintf("%d records acknowledged", pres.acked)},
		summaryRow{"produce ms", fmt.Sprintf("p50 %.3f  p99 %.3f  (send to acknowledgement)", ps.p50Ms, ps.p99Ms)})
	return r, nil
}
