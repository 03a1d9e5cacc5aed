package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Paired rounds: the two cases the broker's goals are stated for
// (produce-1KiB against the produce ceiling, consume-1KiB against the
// consume ceiling) are measured again in rounds, each a ceiling measure
// followed at once by the case. A shared VM's speed drifts by tens of
// percent over the minutes a suite takes, and two identical back-to-back
// measures differ by a fifth; a ratio taken between measures seconds apart
// and repeated says more than one case against ceilings minutes away.
// Every round is reported; the goal is judged on their median.

// suitePairedRoundsDefault is how many rounds each paired case runs
// unless --paired-rounds says otherwise: odd, so the median is a round.
const suitePairedRoundsDefault = 3

// suitePairedRoundsMax bounds --paired-rounds: each round of both cases
// takes four times --duration.
const suitePairedRoundsMax = 25

// pairedRound is one ceiling measure and the case measured right after it.
type pairedRound struct {
	Ceiling *report `json:"ceiling"`
	Case    *report `json:"case"`
	// Ratio is the case's MB/s over the ceiling's.
	Ratio float64 `json:"ratio"`
}

// pairedCase is a case measured in rounds against its ceiling.
type pairedCase struct {
	Name    string        `json:"name"`
	Against string        `json:"against"`
	Rounds  []pairedRound `json:"rounds"`
	// MedianRatio is the median of the rounds' ratios (the mean of the
	// middle two for an even count); MinRatio and MaxRatio bound them.
	MedianRatio float64 `json:"median_ratio"`
	MinRatio    float64 `json:"min_ratio"`
	MaxRatio    float64 `json:"max_ratio"`
}

// summarize sets the median and bounds of the rounds' ratios.
func (p *pairedCase) summarize() {
	ratios := make([]float64, 0, len(p.Rounds))
	for _, r := range p.Rounds {
		ratios = append(ratios, r.Ratio)
	}
	if len(ratios) == 0 {
		return
	}
	slices.Sort(ratios)
	n := len(ratios)
	p.MinRatio, p.MaxRatio = ratios[0], ratios[n-1]
	p.MedianRatio = ratios[n/2]
	if n%2 == 0 {
		p.MedianRatio = (ratios[n/2-1] + ratios[n/2]) / 2
	}
}

// pairedProduce runs produce-1KiB's paired rounds, each into a topic of its
// own that is deleted after the round.
func (s *suiteRun) pairedProduce() error {
	pc := pairedCase{Name: "produce-1KiB", Against: againstProduce}
	for i := range s.cfg.pairedRounds {
		ceiling, err := s.ceilingProduce(fmt.Sprintf("in paired round %d", i+1))
		if err != nil {
			return err
		}
		f := s.caseClient(fmt.Sprintf("paired-produce-1KiB-%d", i+1), 1, 0)
		s.settle()
		r, err := runProduce(s.ctx, s.caseFlags(suiteLargeRecordBytes, quickRecordsLarge), f, s.stderr)
		if err != nil {
			return fmt.Errorf("produce-1KiB paired round %d: %w", i+1, err)
		}
		pc.Rounds = append(pc.Rounds, pairedRound{Ceiling: ceiling, Case: r, Ratio: r.MBPerSec / ceiling.MBPerSec})
		if err := s.dropTopic(f.topic); err != nil {
			return err
		}
	}
	pc.summarize()
	s.out.Paired = append(s.out.Paired, pc)
	return nil
}

// pairedConsume runs consume-1KiB's paired rounds, each reading topic (what
// produce-1KiB wrote) from its start.
func (s *suiteRun) pairedConsume(topic string) error {
	pc := pairedCase{Name: "consume-1KiB", Against: againstConsume}
	for i := range s.cfg.pairedRounds {
		ceiling, err := s.ceilingConsume(fmt.Sprintf("in paired round %d", i+1))
		if err != nil {
			return err
		}
		r, err := s.readTopic(s.caseClient("paired-consume-1KiB", 0, 1), topic, 1)
		if err != nil {
			return fmt.Errorf("consume-1KiB paired round %d: %w", i+1, err)
		}
		pc.Rounds = append(pc.Rounds, pairedRound{Ceiling: ceiling, Case: r, Ratio: r.MBPerSec / ceiling.MBPerSec})
	}
	pc.summarize()
	s.out.Paired = append(s.out.Paired, pc)
	return nil
}

// print writes one line: the median and bounds, then each round as case
// MB/s over ceiling MB/s.
func (p *pairedCase) print(w io.Writer) {
	rounds := make([]string, 0, len(p.Rounds))
	for _, r := range p.Rounds {
		rounds = append(rounds, fmt.Sprintf("%.0f/%.0f", r.Case.MBPerSec, r.Ceiling.MBPerSec))
	}
	fmt.Fprintf(w, "paired %s: median %.2f of %s (%.2f to %.2f) over %d rounds, each right after its ceiling; MB/s case/ceiling: %s\n",
		p.Name, p.MedianRatio, p.Against, p.MinRatio, p.MaxRatio, len(p.Rounds), strings.Join(rounds, " "))
}
