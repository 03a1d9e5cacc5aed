package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// figures are the fields of one loadgen report the results use.
type figures struct {
	Records         int64   `json:"records"`
	Bytes           int64   `json:"bytes"`
	Seconds         float64 `json:"seconds"`
	RecordsPerSec   float64 `json:"records_per_sec"`
	MBPerSec        float64 `json:"mb_per_sec"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	P999Ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`
	RecordSizeBytes int64   `json:"record_size_bytes"`
	Producers       int     `json:"producers"`
	Consumers       int     `json:"consumers"`
	Produced        int64   `json:"produced"`
	LatencyOf       string  `json:"latency_of"`
	StoppedBy       string  `json:"stopped_by"`
	Durability      string  `json:"durability"`
}

// suiteResult is the part of `loadgen suite --json` the results use.
type suiteResult struct {
	Quick       bool          `json:"quick"`
	ClientProcs int           `json:"client_procs"`
	CaseCPUs    string        `json:"case_cpus"`
	Ceiling     suiteCeilings `json:"ceiling"`
	Cases       []suiteCase   `json:"cases"`
	Paired      []pairedCase  `json:"paired"`
}

// pairedCase is a goal case measured in rounds, each right after a
// measure of its ceiling; the goal is judged on the median ratio.
type pairedCase struct {
	Name        string        `json:"name"`
	Against     string        `json:"against"`
	Rounds      []pairedRound `json:"rounds"`
	MedianRatio float64       `json:"median_ratio"`
	MinRatio    float64       `json:"min_ratio"`
	MaxRatio    float64       `json:"max_ratio"`
}

type pairedRound struct {
	Ceiling figures `json:"ceiling"`
	Case    figures `json:"case"`
	Ratio   float64 `json:"ratio"`
}

func (s *suiteResult) findPaired(name string) *pairedCase {
	for i := range s.Paired {
		if s.Paired[i].Name == name && len(s.Paired[i].Rounds) > 0 {
			return &s.Paired[i]
		}
	}
	return nil
}

// ratioGoal is the goal of a case against its ceiling: judged on the
// median of the case's paired rounds when it has any, else on the case
// against the mean of the ceilings before and after the cases.
func ratioGoal(s *suiteResult, name, text, policy string, ceilingMean, want float64) (goal, bool) {
	if p := s.findPaired(name); p != nil {
		return goal{text, policy, fmt.Sprintf("median %.0f%% of %d paired rounds (%.0f%% to %.0f%%)",
			100*p.MedianRatio, len(p.Rounds), 100*p.MinRatio, 100*p.MaxRatio), p.MedianRatio >= want}, true
	}
	if c := s.find(name); c != nil {
		return goal{text, policy, fmt.Sprintf("%.0f%% (%.1f of %.1f MB/s)", 100*c.RatioToCeiling, c.Result.MBPerSec, ceilingMean),
			c.RatioToCeiling >= want}, true
	}
	return goal{}, false
}

// suiteCeilings are a suite run's ceilings: produce and consume measured
// before and after the cases (the cases are ratios of the mean of the
// two), and the splice ceiling beside the consume one.
type suiteCeilings struct {
	Produce      figures `json:"produce"`
	Consume      figures `json:"consume"`
	Splice       figures `json:"splice"`
	ProduceAfter figures `json:"produce_after"`
	ConsumeAfter figures `json:"consume_after"`
}

// produceMean and consumeMean are the MB/s the cases are ratios of.
func (c *suiteCeilings) produceMean() float64 {
	return (c.Produce.MBPerSec + c.ProduceAfter.MBPerSec) / 2
}
func (c *suiteCeilings) consumeMean() float64 {
	return (c.Consume.MBPerSec + c.ConsumeAfter.MBPerSec) / 2
}

type suiteCase struct {
	Name           string  `json:"name"`
	Description    string  `json:"description"`
	Kafka2014      string  `json:"kafka_2014"`
	Against        string  `json:"against"`
	RatioToCeiling float64 `json:"ratio_to_ceiling"`
	Result         figures `json:"result"`
}

func (s *suiteResult) find(name string) *suiteCase {
	for i := range s.Cases {
		if s.Cases[i].Name == name {
			return &s.Cases[i]
		}
	}
	return nil
}

// comparison is one Strata case over the peer's closest run.
type comparison struct {
	FlushPolicy string  `json:"flush_policy"`
	StrataCase  string  `json:"strata_case"`
	PeerRun     string  `json:"peer_run"`
	Strata      float64 `json:"strata_records_per_sec"`
	Peer        float64 `json:"peer_records_per_sec"`
	Ratio       float64 `json:"strata_over_peer"`
}

// goal is one of the project's targets and whether a run met it.
type goal struct {
	Goal        string `json:"goal"`
	FlushPolicy string `json:"flush_policy"`
	Measured    string `json:"measured"`
	Met         bool   `json:"met"`
}

type results struct {
	Label     string  `json:"label"`
	Date      string  `json:"date"`
	StartedAt string  `json:"started_at"`
	Seconds   float64 `json:"seconds"`
	Quick     bool    `json:"quick"`
	Commit    string  `json:"commit"`
	Machine   machine `json:"machine"`
	// ServerCPUs and ClientCPUs are the CPU lists of the split machine
	// (--client-cpus): the brokers and the peer's server on the one, the
	// cases and the peer's client on the other. Empty: no split.
	ServerCPUs string `json:"server_cpus,omitempty"`
	ClientCPUs string `json:"client_cpus,omitempty"`
	// BrokerShards is the broker's shard count (--cores, or one per CPU
	// it has).
	BrokerShards int         `json:"broker_shards"`
	Strata       []strataRun `json:"strata"`
	Peer         *peerResult `json:"peer,omitempty"`
	// Scaling is the shard scaling sweep (--scaling), run instead of the
	// suites and the peer.
	Scaling *scalingResult `json:"scaling,omitempty"`
	// Replication is the replication section (--replication).
	Replication *replicationResult `json:"replication,omitempty"`
	// Groups is the consumer-group section (--groups).
	Groups *groupsResult `json:"groups,omitempty"`
	// Compression is the compression section (--compression-rounds).
	Compression *compressionResult `json:"compression,omitempty"`
	Comparisons []comparison       `json:"comparisons,omitempty"`
	Goals       []goal             `json:"goals"`
}

// peerPairs are the Strata cases and the peer runs closest to them.
var peerPairs = []struct{ strata, peer string }{
	{"produce-100B", "publish-100B"},
	{"produce-1KiB", "publish-1024B"},
	{"consume-100B", "consume-100B"},
	{"consume-1KiB", "consume-1024B"},
}

// The project's goals.
const (
	goalProduceOfCeiling    = 0.5
	goalConsumeOfCeiling    = 0.8
	goalSmallRecordsPerSec  = 3_000_000
	goalOverPeer            = 5
	goalE2EP99Ms            = 1
	goalE2EMBPerSec         = 100
	goalE2EMBPerSecFraction = 0.95
)

// compare fills the comparisons with the peer and the goals.
func (r *results) compare() {
	for _, run := range r.Strata {
		s := &run.Suite
		if r.Peer != nil {
			for _, pair := range peerPairs {
				c := s.find(pair.strata)
				p := r.Peer.find(pair.peer)
				if c == nil || p == nil || p.RecordsPerSec == 0 {
					continue
				}
				r.Comparisons = append(r.Comparisons, comparison{
					FlushPolicy: run.FlushPolicy, StrataCase: pair.strata, PeerRun: pair.peer,
					Strata: c.Result.RecordsPerSec, Peer: p.RecordsPerSec, Ratio: c.Result.RecordsPerSec / p.RecordsPerSec,
				})
			}
		}
		if g, ok := ratioGoal(s, "produce-1KiB", "1 KiB produce >= 50% of the produce ceiling", run.FlushPolicy,
			s.Ceiling.produceMean(), goalProduceOfCeiling); ok {
			r.Goals = append(r.Goals, g)
		}
		for _, name := range []string{"consume-1KiB", "consume-100B"} {
			if g, ok := ratioGoal(s, name, "consume >= 80% of the consume ceiling ("+name+")", run.FlushPolicy,
				s.Ceiling.consumeMean(), goalConsumeOfCeiling); ok {
				r.Goals = append(r.Goals, g)
			}
		}
		best, bestName := 0.0, ""
		for _, name := range []string{"produce-100B", "produce-100B-3-producers"} {
			if c := s.find(name); c != nil && c.Result.RecordsPerSec > best {
				best, bestName = c.Result.RecordsPerSec, name
			}
		}
		if bestName != "" {
			r.Goals = append(r.Goals, goal{"100 B records >= 3,000,000 records/s", run.FlushPolicy,
				fmt.Sprintf("%.0f records/s (%s)", best, bestName), best >= goalSmallRecordsPerSec})
		}
		if c := s.find("e2e-1KiB"); c != nil {
			atRate := c.Result.MBPerSec >= goalE2EMBPerSec*goalE2EMBPerSecFraction
			r.Goals = append(r.Goals, goal{"e2e p99 < 1 ms at 100 MB/s", run.FlushPolicy,
				fmt.Sprintf("p99 %.3f ms at %.1f MB/s", c.Result.P99Ms, c.Result.MBPerSec),
				c.Result.P99Ms < goalE2EP99Ms && atRate})
		}
	}
	if r.Scaling != nil {
		r.Goals = append(r.Goals, r.Scaling.goals()...)
	}
	if r.Replication != nil {
		r.Goals = append(r.Goals, r.Replication.goals()...)
	}
	for _, c := range r.Comparisons {
		r.Goals = append(r.Goals, goal{"each case >= 5x the peer (" + c.StrataCase + " / " + c.PeerRun + ")", c.FlushPolicy,
			fmt.Sprintf("%.2fx", c.Ratio), c.Ratio >= goalOverPeer})
	}
}

func (p *peerResult) find(name string) *peerRun {
	for i := range p.Runs {
		if p.Runs[i].Name == name {
			return &p.Runs[i]
		}
	}
	return nil
}

// write stores the results as JSON and Markdown under out and returns both
// paths.
func (r *results) write(out string) (jsonPath, mdPath string, err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", "", err
	}
	base := freeBase(resultsBase(out, r.Date, r.Label))
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", err
	}
	jsonPath, mdPath = base+".json", base+".md"
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(mdPath, []byte(r.markdown()), 0o644); err != nil {
		return "", "", err
	}
	return jsonPath, mdPath, nil
}

// freeBase returns base, or base-run2, base-run3, ... when an earlier run
// of the same day and label holds the name: results already taken (and
// perhaps committed) are never overwritten.
func freeBase(base string) string {
	taken := func(b string) bool {
		for _, ext := range []string{".json", ".md"} {
			if _, err := os.Stat(b + ext); err == nil {
				return true
			}
		}
		return false
	}
	if !taken(base) {
		return base
	}
	for i := 2; ; i++ {
		if b := fmt.Sprintf("%s-run%d", base, i); !taken(b) {
			return b
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "met"
	}
	return "**not met**"
}

// markdown renders the results for people.
func (r *results) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Strata benchmark, %s, %s\n\n", r.Date, r.Label)
	if r.Quick {
		w("**Quick run** (the smoke test's scale): the figures only show the benchmark works.\n\n")
	}
	w("Generated by `make bench` (`go run ./benchmarks`) at commit %s, in %.0f s. Throughput is in MB/s with MB = 10^6 bytes; "+
		"latencies are in milliseconds. Every figure holds only for the machine below.\n\n", r.Commit, r.Seconds)
	m := r.Machine
	w("## Machine\n\n| | |\n| --- | --- |\n")
	w("| host | %s |\n| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s GiB |\n| kernel | %s |\n| file system | %s |\n| Go | %s |\n| free page reporting | %s |\n\n",
		m.Hostname, m.NProc, m.CPUModel, m.MemoryGiB, m.Kernel, m.Filesystem, m.GoVersion, m.PageReporting)

	w("## Durability of each side\n\n")
	w("- Strata `sync` (the default flush policy): each append is fdatasync'ed before it is acknowledged " +
		"(group commit across requests) and before consumers can read it.\n")
	w("- Strata `never`: appends are acknowledged from the page cache and never fdatasync'ed by the broker " +
		"(durability comes from replication, which a single node does not have).\n")
	w("- The ceiling writes to the page cache only (no fdatasync): it bounds `never`; under `sync` Strata also pays the disk.\n")
	if r.Peer != nil {
		w("- %s: %s.\n", r.Peer.Name, r.Peer.Durability)
	}
	w("\n")

	for _, run := range r.Strata {
		s := &run.Suite
		w("## Strata, flush policy `%s`\n\n", run.FlushPolicy)
		if r.ClientCPUs != "" {
			w("The machine was split: the broker ran on CPUs %s with %d shards; loadgen's cases on CPUs %s, with GOMAXPROCS %d. "+
				"The ceilings used every CPU.\n\n", r.ServerCPUs, r.BrokerShards, r.ClientCPUs, s.ClientProcs)
		} else {
			w("loadgen's client ran on %d of the %d CPUs (GOMAXPROCS) during the cases, beside the broker; the ceilings used all.\n\n",
				s.ClientProcs, m.NProc)
		}
		w("| case | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | of ceiling | Kafka 2014 |\n")
		w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		row := func(name string, f figures, ratio, kafka string) {
			w("| %s | %.0f | %.1f | %.3f | %.3f | %.3f | %s | %s |\n", name, f.RecordsPerSec, f.MBPerSec,
				f.P50Ms, f.P99Ms, f.P999Ms, ratio, kafka)
		}
		row("ceiling produce (TCP into a file), before the cases", s.Ceiling.Produce, "-", "")
		row("ceiling consume (sendfile from cache), before the cases", s.Ceiling.Consume, "-", "")
		if s.Ceiling.Splice.MBPerSec > 0 && s.Ceiling.Consume.MBPerSec > 0 {
			row("ceiling splice (io_uring splice from cache, the broker's way)", s.Ceiling.Splice,
				fmt.Sprintf("%.2f of consume", s.Ceiling.Splice.MBPerSec/s.Ceiling.Consume.MBPerSec), "")
		}
		for _, c := range s.Cases {
			ratio := "-"
			if c.Against != "" {
				ratio = fmt.Sprintf("%.2f of %s", c.RatioToCeiling, c.Against)
			}
			row(c.Name, c.Result, ratio, c.Kafka2014)
		}
		if s.Ceiling.Produce.MBPerSec > 0 && s.Ceiling.Consume.MBPerSec > 0 {
			row("ceiling produce, after the cases", s.Ceiling.ProduceAfter,
				fmt.Sprintf("%.2f of before", s.Ceiling.ProduceAfter.MBPerSec/s.Ceiling.Produce.MBPerSec), "")
			row("ceiling consume, after the cases", s.Ceiling.ConsumeAfter,
				fmt.Sprintf("%.2f of before", s.Ceiling.ConsumeAfter.MBPerSec/s.Ceiling.Consume.MBPerSec), "")
		}
		w("\nA case's ratio is of the mean of its ceiling measured before and after the cases "+
			"(produce %.1f MB/s, consume %.1f MB/s).\n", s.Ceiling.produceMean(), s.Ceiling.consumeMean())
		if len(s.Paired) > 0 {
			w("\nPaired rounds: each a measure of the ceiling followed at once by the case; the goals of these cases are judged on the median ratio.\n\n")
			w("| case | round | ceiling MB/s | case MB/s | case records/s | of ceiling |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
			for _, p := range s.Paired {
				for i, rd := range p.Rounds {
					w("| %s | %d | %.1f | %.1f | %.0f | %.2f of %s |\n", p.Name, i+1, rd.Ceiling.MBPerSec, rd.Case.MBPerSec,
						rd.Case.RecordsPerSec, rd.Ratio, p.Against)
				}
				w("| %s | median | | | | **%.2f** (%.2f to %.2f) |\n", p.Name, p.MedianRatio, p.MinRatio, p.MaxRatio)
			}
		}
		w("\nLatency: produce cases from Send to the acknowledgement callback; consume cases per Poll call; " +
			"produce-and-consume and e2e from the send time stamped in the value to the consumer holding the record. " +
			"The ceiling's latency is per 1 MiB chunk.\n\n")
	}

	if r.Peer != nil {
		w("## Peer: %s\n\n%s\n\n", r.Peer.Name, r.Peer.Versions)
		w("| run | messages | size | msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, p := range r.Peer.Runs {
			lat := func(v float64) string {
				if v == 0 {
					return "-"
				}
				return fmt.Sprintf("%.3f", v)
			}
			w("| %s | %d | %d B | %.0f | %.1f | %s | %s | %s |\n", p.Name, p.Messages, p.SizeBytes,
				p.RecordsPerSec, p.MBPerSec, lat(p.P50Ms), lat(p.P99Ms), lat(p.P999Ms))
		}
		w("\nPublish runs are `nats bench js pub async` (its latency is per publish until its acknowledgement, as nats bench reports it); " +
			"consume runs are `nats bench js ordered` reading the stream the publish run wrote. nats bench reports no end-to-end latency.\n\n")
		w("### Strata over the peer\n\n| flush policy | Strata case | peer run | Strata records/s | peer msgs/s | Strata / peer |\n| --- | --- | --- | ---: | ---: | ---: |\n")
		for _, c := range r.Comparisons {
			w("| %s | %s | %s | %.0f | %.0f | %.2fx |\n", c.FlushPolicy, c.StrataCase, c.PeerRun, c.Strata, c.Peer, c.Ratio)
		}
		w("\n")
	}

	if r.Scaling != nil {
		r.Scaling.markdown(w)
	}
	if r.Replication != nil {
		r.Replication.markdown(w)
	}
	if r.Groups != nil {
		r.Groups.markdown(w)
	}
	if r.Compression != nil {
		r.Compression.markdown(w)
	}
	w("## Goals\n\n| goal | flush policy | measured | |\n| --- | --- | --- | --- |\n")
	for _, g := range r.Goals {
		w("| %s | %s | %s | %s |\n", g.Goal, g.FlushPolicy, g.Measured, yesNo(g.Met))
	}
	w("\nHow the cases are run and how to read them: docs/benchmarks.md.\n")
	return b.String()
}
