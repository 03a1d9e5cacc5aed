package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-db/strata/client"
	"github.com/strata-db/strata/loadgen/cpuset"
)

const (
	workloadSuite    = "suite"
	flagQuick        = "quick"
	flagPairedRounds = "paired-rounds"
	flagCaseCPUs     = "case-cpus"

	// Ceiling runs of the suite: chunks of the ceiling's default size, and
	// a cached file big enough to stay out of one chunk's way.
	suiteCeilingRecordBytes    = 1024
	suiteCeilingFileBytes      = 1 << 30
	quickCeilingRecords        = 16 << 10
	quickCeilingFileBytes      = 4 << 20
	suiteProducersSeveral      = 3
	suiteConsumersSeveral      = 3
	suiteSmallRecordBytes      = 100
	suiteLargeRecordBytes      = 1024
	suiteE2ETargetBytesPerSec  = 100 * bytesPerMB
	quickE2ERecordsPerSec      = 2000
	quickRecordsSmall          = 20_000
	quickRecordsLarge          = 5_000
	quickSweepBytesPerCase     = 4 << 20
	quickSweepMaxRecordsOfCase = 20_000
)

// suiteSweepSizes are the record sizes of the sweep, 10 B to 100 KB by
// decades as in the 2014 benchmark.
var suiteSweepSizes = []int64{10, 100, 1000, 10_000, 100_000}

// Which ceiling a case is a ratio of.
const (
	againstProduce = "produce"
	againstConsume = "consume"
)

// suiteCase is one case of the suite and its figures.
type suiteCase struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Kafka2014 is the figure the 2014 Kafka benchmark reported for the
	// case it follows, on its three machines.
	Kafka2014 string `json:"kafka_2014,omitempty"`
	// Against names the ceiling the case is a ratio of (empty for
	// latency cases); RatioToCeiling is MB/s over that ceiling's MB/s,
	// the mean of its measures before and after the cases.
	Against        string  `json:"against,omitempty"`
	RatioToCeiling float64 `json:"ratio_to_ceiling,omitempty"`
	Result         *report `json:"result"`
}

// suiteCeilings are the ceilings measured in the same run.
type suiteCeilings struct {
	Produce *report `json:"produce"`
	Consume *report `json:"consume"`
	// Splice is the consume ceiling's file sent the broker's way (io_uring
	// splice): not a ceiling cases are a ratio of, but what sending that
	// way costs beside sendfile on the same machine in the same run.
	Splice *report `json:"splice"`
	// ProduceAfter and ConsumeAfter are the two ceilings measured again
	// after the cases. A machine's speed drifts over the minutes a suite
	// takes (a shared VM by tens of percent), so the cases are a ratio of
	// the mean of the two measures, which brackets them; how far apart
	// the two are says how much a run's ratios can be trusted.
	ProduceAfter *report `json:"produce_after"`
	ConsumeAfter *report `json:"consume_after"`
}

// mbPerSec is the ceiling a case against names is a ratio of: the mean of
// its measures before and after the cases.
func (c *suiteCeilings) mbPerSec(against string) float64 {
	switch against {
	case againstProduce:
		return (c.Produce.MBPerSec + c.ProduceAfter.MBPerSec) / 2
	case againstConsume:
		return (c.Consume.MBPerSec + c.ConsumeAfter.MBPerSec) / 2
	}
	panic("loadgen: no ceiling named " + against)
}

// suiteReport is the suite's output: every case beside the ceiling.
type suiteReport struct {
	Workload    string   `json:"workload"`
	Quick       bool     `json:"quick"`
	Brokers     []string `json:"brokers"`
	Partitions  int32    `json:"partitions"`
	FlushPolicy string   `json:"flush_policy"`
	Acks        string   `json:"acks"`
	CaseSeconds float64  `json:"case_seconds,omitempty"`
	// ClientProcs is GOMAXPROCS while the cases ran (--procs).
	ClientProcs int `json:"client_procs"`
	// CaseCPUs is the CPU list the cases ran on (--case-cpus; empty: all).
	CaseCPUs  string        `json:"case_cpus,omitempty"`
	StartedAt string        `json:"started_at"`
	Seconds   float64       `json:"seconds"`
	Ceiling   suiteCeilings `json:"ceiling"`
	Cases     []suiteCase   `json:"cases"`
	// Paired are the goal cases measured again in rounds, each right
	// after its ceiling (suite_paired.go).
	Paired []pairedCase `json:"paired,omitempty"`
	machineFacts
}

type suiteConfig struct {
	quick bool
	dir   string
	// pairedRounds is the rounds of each paired case (0: none).
	pairedRounds int
	// caseCPUs confines the cases to these CPUs (nil: all).
	caseCPUs []int
}

func newSuiteCmd(wf *workloadFlags) *cobra.Command {
	f := &clientFlags{acks: "1"}
	var cfg suiteConfig
	var caseCPUs string
	const which = withProducer | withConsumer
	cmd := &cobra.Command{
		Use:   "suite",
		Short: "Run the cases of the 2014 Kafka benchmark against a broker, beside the ceiling",
		Long: `Run the cases of Kafka's 2014 benchmark ("2 million writes per second on three
cheap machines"), scaled to one broker on this machine, and measure the
physical ceiling (loadgen ceiling, in this process) in the same run:

  produce-100B              one producer, 100-byte records, no replication
  produce-1KiB              one producer, 1 KiB records
  produce-100B-3-producers  three producers at once
  consume-100B              one consumer reads what produce-100B wrote
  consume-100B-3-consumers  three consumers read it, each a third of the partitions
  consume-1KiB              one consumer reads what produce-1KiB wrote
  produce-and-consume-100B  one producer and one consumer at once
  size-<N>B                 one producer, record sizes 10 B to 100 KB
  e2e-1KiB                  end-to-end latency at 100 MB/s of 1 KiB records

Each case runs for --duration (bounded by --records when given) on a topic of
its own, with --partitions partitions and --flush-policy, deleted after the
case. Throughput cases are reported as a ratio of the produce or consume
ceiling. --quick scales everything down to a few seconds in all.

--record-size does not apply: the cases set their own sizes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed(flagRecordSize) {
				return fmt.Errorf("--%s does not apply to the suite: its cases set their own sizes", flagRecordSize)
			}
			if err := wf.resolve(cmd.Flags()); err != nil {
				return err
			}
			if err := f.validate(which); err != nil {
				return err
			}
			if cfg.pairedRounds < 0 || cfg.pairedRounds > suitePairedRoundsMax {
				return fmt.Errorf("--%s %d: want 0 to %d", flagPairedRounds, cfg.pairedRounds, suitePairedRoundsMax)
			}
			if caseCPUs != "" {
				cpus, err := cpuset.Parse(caseCPUs)
				if err != nil {
					return fmt.Errorf("--%s: %w", flagCaseCPUs, err)
				}
				cfg.caseCPUs = cpus
			}
			if cfg.dir == "" {
				cfg.dir = os.TempDir()
			}
			r, err := runSuite(cmd.Context(), wf, f, &cfg, cmd.ErrOrStderr())
			if err != nil {
				return runError{err}
			}
			if err := r.print(cmd.OutOrStdout(), wf.json); err != nil {
				return runError{err}
			}
			return nil
		},
	}
	f.register(cmd.Flags(), which, fmt.Sprintf("loadgen-suite-%d", time.Now().Unix()))
	cmd.Flags().BoolVar(&cfg.quick, flagQuick, false, "scale every case down to a few thousand records (a smoke test)")
	cmd.Flags().IntVar(&cfg.pairedRounds, flagPairedRounds, suitePairedRoundsDefault,
		"rounds of produce-1KiB and consume-1KiB, each measured right after its ceiling (0: none)")
	cmd.Flags().StringVar(&caseCPUs, flagCaseCPUs, "",
		"CPU list the cases run on, such as 1 or 8-15 (default: all); the ceilings always use every CPU, and --procs defaults to the list's length")
	cmd.Flags().StringVar(&cfg.dir, flagDir, "", "directory for the ceiling's data file (default: the system temp dir); put it on the broker's file system")
	cmd.Flags().Lookup(flagTopic).Usage = "prefix of the topics the cases create"
	return cmd
}

// suiteRun holds what every case of one suite run shares.
type suiteRun struct {
	ctx    context.Context
	wf     *workloadFlags
	f      *clientFlags
	cfg    *suiteConfig
	stderr io.Writer
	cl     *client.Client
	out    *suiteReport
	cpus   suiteCPUs
}

func runSuite(ctx context.Context, wf *workloadFlags, f *clientFlags, cfg *suiteConfig, stderr io.Writer) (*suiteReport, error) {
	start := time.Now()
	cl, err := client.Dial(ctx, f.clientConfig())
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", f.brokers, err)
	}
	defer cl.Close()
	s := &suiteRun{ctx: ctx, wf: wf, f: f, cfg: cfg, stderr: stderr, cl: cl, out: &suiteReport{
		Workload:     workloadSuite,
		Quick:        cfg.quick,
		Brokers:      f.brokers,
		Partitions:   f.partitions,
		FlushPolicy:  flushPolicyLabel(f.flushPolicy),
		Acks:         f.acks,
		StartedAt:    start.UTC().Format(time.RFC3339),
		machineFacts: collectMachineFacts(),
	}}
	if !cfg.quick {
		s.out.CaseSeconds = wf.duration.Seconds()
	}
	if err := s.cpus.start(cfg.caseCPUs, f.procs); err != nil {
		return nil, err
	}
	s.out.CaseCPUs = cpuset.Format(cfg.caseCPUs)
	// The ceilings measure the machine, with every CPU; --procs and
	// --case-cpus apply to the client's cases only.
	if err := s.ceilings(); err != nil {
		return nil, err
	}
	if err := s.cpus.enterCases(); err != nil {
		return nil, errors.Join(err, s.cpus.leaveCases())
	}
	s.out.ClientProcs = runtime.GOMAXPROCS(0)
	err = s.cases()
	if leaveErr := s.cpus.leaveCases(); err == nil {
		err = leaveErr
	}
	if err != nil {
		return nil, err
	}
	if err := s.ceilingsAfter(); err != nil {
		return nil, err
	}
	s.out.Seconds = time.Since(start).Seconds()
	return s.out, nil
}

// caseFlags are the shared flags for one case: --duration and --records of
// the command line (or the quick counts) and the case's record size.
func (s *suiteRun) caseFlags(recordSize, quickRecords int64) *workloadFlags {
	wf := *s.wf
	wf.json = false
	wf.recordSizeBytes = byteSize(recordSize)
	if s.cfg.quick {
		wf.records, wf.duration = quickRecords, 0
	}
	return &wf
}

// caseClient is the client flags of one case on its own topic.
func (s *suiteRun) caseClient(name string, producers, consumers int) *clientFlags {
	f := *s.f
	f.topic = s.f.topic + "-" + name
	f.producers, f.consumers = producers, consumers
	f.rate = 0
	return &f
}

// ceilingFlags are the flags of a ceiling run: 1 KiB records for
// --duration, or a few records in all with --quick.
func (s *suiteRun) ceilingFlags() *workloadFlags {
	records := int64(0)
	if s.cfg.quick {
		records = quickCeilingRecords
	}
	return s.caseFlags(suiteCeilingRecordBytes, records)
}

// settle writes back the dirty pages that earlier measures left (sync(2))
// before the next one starts. The kernel would otherwise flush them while
// that one runs: a produce case under flush policy `never` leaves
// gigabytes of dirty pages, and a consume case that only reads the page
// cache would pay for their write-back.
func (s *suiteRun) settle() { unix.Sync() }

// ceilingProduce measures the produce ceiling; when names the moment in
// errors ("before the cases", "in paired round 2").
func (s *suiteRun) ceilingProduce(when string) (r *report, err error) {
	pc := &ceilingConfig{mode: modeProduce, batchBytes: defaultBatchBytes, dir: s.cfg.dir}
	s.settle()
	err = s.cpus.onAll(func() error {
		r, err = measureProduce(s.ctx, s.ceilingFlags(), pc, s.stderr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("produce ceiling %s: %w", when, err)
	}
	return r, nil
}

// ceilingConsume measures the consume ceiling (sendfile).
func (s *suiteRun) ceilingConsume(when string) (*report, error) {
	return s.ceilingFromCache(modeConsume, when)
}

// ceilingFromCache measures the consume ceiling in mode consume
// (sendfile) or splice (the broker's way).
func (s *suiteRun) ceilingFromCache(mode, when string) (r *report, err error) {
	fileBytes := byteSize(suiteCeilingFileBytes)
	if s.cfg.quick {
		fileBytes = quickCeilingFileBytes
	}
	cc := &ceilingConfig{mode: mode, batchBytes: defaultBatchBytes, dir: s.cfg.dir, fileBytes: fileBytes}
	s.settle()
	err = s.cpus.onAll(func() error {
		r, err = measureConsume(s.ctx, s.ceilingFlags(), cc, s.stderr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s ceiling %s: %w", mode, when, err)
	}
	return r, nil
}

// measureCeilings measures the produce and consume ceilings, and the
// splice ceiling too when withSplice is set.
func (s *suiteRun) measureCeilings(when string, withSplice bool) (p, c, sp *report, err error) {
	if p, err = s.ceilingProduce(when); err != nil {
		return nil, nil, nil, err
	}
	if c, err = s.ceilingConsume(when); err != nil {
		return nil, nil, nil, err
	}
	if withSplice {
		if sp, err = s.ceilingFromCache(modeSplice, when); err != nil {
			return nil, nil, nil, err
		}
	}
	return p, c, sp, nil
}

func (s *suiteRun) ceilings() error {
	p, c, sp, err := s.measureCeilings("before the cases", true)
	if err != nil {
		return err
	}
	s.out.Ceiling = suiteCeilings{Produce: p, Consume: c, Splice: sp}
	return nil
}

// ceilingsAfter measures the produce and consume ceilings again after the
// cases, and sets every case's ratio against the mean of both measures.
func (s *suiteRun) ceilingsAfter() error {
	p, c, _, err := s.measureCeilings("after the cases", false)
	if err != nil {
		return err
	}
	s.out.Ceiling.ProduceAfter, s.out.Ceiling.ConsumeAfter = p, c
	for i := range s.out.Cases {
		c := &s.out.Cases[i]
		if c.Against != "" {
			c.RatioToCeiling = c.Result.MBPerSec / s.out.Ceiling.mbPerSec(c.Against)
		}
	}
	return nil
}

// add records a case's result; its ratio to the ceiling is set once the
// ceilings have been measured after the cases too.
func (s *suiteRun) add(c suiteCase) {
	s.out.Cases = append(s.out.Cases, c)
}

func (s *suiteRun) dropTopic(topic string) error {
	if err := deleteTopic(s.ctx, s.cl, topic); err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return nil
}

// produceCase runs one producer case on a topic of its own; the topic is
// kept when keep is set (the consume cases read it).
func (s *suiteRun) produceCase(name, desc, kafka string, producers int, recordSize, quickRecords int64, keep bool) error {
	f := s.caseClient(name, producers, 0)
	s.settle()
	r, err := runProduce(s.ctx, s.caseFlags(recordSize, quickRecords), f, s.stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.add(suiteCase{Name: name, Description: desc, Kafka2014: kafka, Against: againstProduce, Result: r})
	if keep {
		return nil
	}
	return s.dropTopic(f.topic)
}

func (s *suiteRun) consumeCase(name, desc, kafka, topic string, consumers int) error {
	f := s.caseClient(name, 0, consumers)
	r, err := s.readTopic(f, topic, consumers)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.add(suiteCase{Name: name, Description: desc, Kafka2014: kafka, Against: againstConsume, Result: r})
	return nil
}

// readTopic reads topic from its start to the log end with consumers
// consumers, bounded by --duration; f names the case.
func (s *suiteRun) readTopic(f *clientFlags, topic string, consumers int) (*report, error) {
	parts, err := s.cl.Partitions(s.ctx, topic)
	if err != nil {
		return nil, err
	}
	f.topic, f.consumers = topic, consumers
	wf := s.caseFlags(suiteSmallRecordBytes, 0)
	wf.records = 0 // read to the log end, bounded by time only
	s.settle()
	return consumeTopic(s.ctx, wf, f, topicState{partitions: parts}, s.stderr)
}

// e2eCase runs producers and consumers at once through runE2E; rate 0 is
// the produce-and-consume throughput case.
func (s *suiteRun) e2eCase(name, desc, kafka, against string, recordSize int64, rate float64, quickRecords int64) error {
	f := s.caseClient(name, 1, 1)
	f.rate = rate
	s.settle()
	r, err := runE2E(s.ctx, s.caseFlags(recordSize, quickRecords), f, s.stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.add(suiteCase{Name: name, Description: desc, Kafka2014: kafka, Against: against, Result: r})
	return s.dropTopic(f.topic)
}

func (s *suiteRun) cases() error {
	small := s.f.topic + "-produce-100B"
	large := s.f.topic + "-produce-1KiB"
	steps := []func() error{
		func() error {
			return s.produceCase("produce-100B", "one producer, 100-byte records, no replication",
				"821,557 records/s (78.3 MB/s), one producer thread, 6 partitions",
				1, suiteSmallRecordBytes, quickRecordsSmall, true)
		},
		func() error {
			return s.produceCase("produce-1KiB", "one producer, 1 KiB records", "",
				1, suiteLargeRecordBytes, quickRecordsLarge, true)
		},
		func() error {
			return s.produceCase("produce-100B-3-producers", "three producers at once, 100-byte records",
				"2,024,032 records/s (193.0 MB/s), three producers, 3x async replication",
				suiteProducersSeveral, suiteSmallRecordBytes, quickRecordsSmall, false)
		},
		func() error {
			return s.consumeCase("consume-100B", "one consumer reads produce-100B's topic from the start",
				"940,521 records/s (89.7 MB/s), one consumer", small, 1)
		},
		func() error {
			return s.consumeCase("consume-100B-3-consumers", "three consumers read it, a third of the partitions each",
				"2,615,968 records/s (249.5 MB/s), three consumers on three machines", small, suiteConsumersSeveral)
		},
		func() error { return s.dropTopic(small) },
		func() error {
			return s.consumeCase("consume-1KiB", "one consumer reads produce-1KiB's topic from the start", "", large, 1)
		},
		func() error { return s.pairedConsume(large) },
		func() error { return s.dropTopic(large) },
		s.pairedProduce,
		func() error {
			return s.e2eCase("produce-and-consume-100B", "one producer and one consumer tailing it, at once",
				"795,064 records/s (75.8 MB/s)", againstProduce, suiteSmallRecordBytes, 0, quickRecordsSmall)
		},
	}
	for _, size := range suiteSweepSizes {
		quick := min(quickSweepBytesPerCase/size, quickSweepMaxRecordsOfCase)
		steps = append(steps, func() error {
			return s.produceCase(fmt.Sprintf("size-%dB", size), fmt.Sprintf("one producer, %d-byte records", size),
				"", 1, size, quick, false)
		})
	}
	e2eRate := float64(suiteE2ETargetBytesPerSec) / suiteLargeRecordBytes
	e2eQuick := int64(quickE2ERecordsPerSec / 2)
	if s.cfg.quick {
		e2eRate = quickE2ERecordsPerSec
	}
	steps = append(steps, func() error {
		return s.e2eCase("e2e-1KiB", fmt.Sprintf("end-to-end latency, 1 KiB records at %.0f records/s (%.1f MB/s)",
			e2eRate, e2eRate*suiteLargeRecordBytes/bytesPerMB),
			"2 ms median, 3 ms p99, 14 ms p99.9", "", suiteLargeRecordBytes, e2eRate, e2eQuick)
	})
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// print writes the suite's table and, when asJSON, the whole report as one
// JSON object on the last line.
func (r *suiteReport) print(w io.Writer, asJSON bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "suite: the 2014 Kafka benchmark's cases, flush policy %s, acks %s, %d partitions%s\n",
		r.FlushPolicy, r.Acks, r.Partitions, map[bool]string{true: " (quick)", false: ""}[r.Quick])
	fmt.Fprintf(tw, "case\trecords/s\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tof ceiling\t\n")
	row := func(name string, rep *report, ratio string) {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.3f\t%.3f\t%.3f\t%s\t\n", name, rep.RecordsPerSec, rep.MBPerSec,
			rep.P50Ms, rep.P99Ms, rep.P999Ms, ratio)
	}
	row("ceiling produce", r.Ceiling.Produce, "-")
	row("ceiling consume", r.Ceiling.Consume, "-")
	row("ceiling splice", r.Ceiling.Splice, fmt.Sprintf("%.2f consume", r.Ceiling.Splice.MBPerSec/r.Ceiling.Consume.MBPerSec))
	for _, c := range r.Cases {
		ratio := "-"
		if c.Against != "" {
			ratio = fmt.Sprintf("%.2f %s", c.RatioToCeiling, c.Against)
		}
		row(c.Name, c.Result, ratio)
	}
	row("ceiling produce after", r.Ceiling.ProduceAfter, fmt.Sprintf("%.2f before", r.Ceiling.ProduceAfter.MBPerSec/r.Ceiling.Produce.MBPerSec))
	row("ceiling consume after", r.Ceiling.ConsumeAfter, fmt.Sprintf("%.2f before", r.Ceiling.ConsumeAfter.MBPerSec/r.Ceiling.Consume.MBPerSec))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "of ceiling: a case's MB/s over the mean of its ceiling measured before and after the cases\n")
	for _, p := range r.Paired {
		p.print(w)
	}
	fmt.Fprintf(w, "latency: produce cases send to acknowledgement; consume cases per Poll; e2e and produce-and-consume send to receipt\n")
	onCPUs := ""
	if r.CaseCPUs != "" {
		onCPUs = ", confined to CPUs " + r.CaseCPUs
	}
	fmt.Fprintf(w, "machine: %s, %d CPUs, %s, kernel %s, %s; %.1f s in all; cases with the client on %d CPUs (GOMAXPROCS)%s, ceilings on all\n",
		r.Hostname, r.NProc, r.CPUModel, r.KernelRelease, r.GoVersion, r.Seconds, r.ClientProcs, onCPUs)
	if !asJSON {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(line)))
	return err
}
