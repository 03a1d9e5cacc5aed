package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/strata-db/strata/server/metadata"
)

// The porcupine model is the topic set, one topic name at a time (names
// are independent, so the history is partitioned by name). A state is the
// topic's id, or "" when absent.
type topicOp struct {
	kind string // "create", "delete", "describe"
	name string
	id   metadata.TopicID // create: the id proposed
}

type topicOut struct {
	unknown bool   // timed out or leadership moved after proposing
	ok      bool   // create/delete applied
	id      string // describe: the id found, "" when absent
	code    metadata.ErrorCode
}

var topicModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var names []string
		for _, op := range h {
			n := op.Input.(topicOp).name
			if _, ok := by[n]; !ok {
				names = append(names, n)
			}
			by[n] = append(by[n], op)
		}
		out := make([][]porcupine.Operation, 0, len(names))
		for _, n := range names {
			out = append(out, by[n])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(topicOp), output.(topicOut)
		switch in.kind {
		case "create":
			switch {
			case out.unknown && st == "":
				return true, in.id.String()
			case out.unknown:
				return true, st // refused: the topic exists
			case out.ok:
				return st == "", in.id.String()
			case out.code == metadata.ErrTopicAlreadyExists:
				return st != "", st
			default:
				// Every other refusal comes after the existence check.
				return st == "", st
			}
		case "delete":
			switch {
			case out.unknown:
				return true, ""
			case out.ok:
				return st != "", ""
			default:
				return st == "", st // UNKNOWN_TOPIC_OR_PARTITION
			}
		default:
			return out.id == st, st
		}
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		return fmt.Sprintf("%+v -> %+v", input, output)
	},
}

// longSessionMs keeps the one broker of the linearizability test from
// being fenced (no one heartbeats it), so that creates can succeed.
const longSessionMs = 1 << 40

// TestLinearizableTopicOperations records topic creates, deletes and
// describes from several clients against a 3-voter cluster under message
// loss, duplication, reordering, partitions and crashes, and checks the
// history is linearizable.
func TestLinearizableTopicOperations(t *testing.T) {
	for seed := uint64(1); seed <= uint64(max(1, schedules()/2)); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runLinearizability(t, seed) })
	}
}

func runLinearizability(t *testing.T, seed uint64) {
	const voters, clients, steps = 3, 4, 300
	c := newSimCluster(t, voters, seed+100, longSessionMs)
	defer c.stopAll()
	c.runUntil("a leader", func() bool { return c.leader() != nil })
	l := c.leader()
	c.await("registering a broker", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		res, err := l.Propose(ctx, RegisterBroker(metadata.RegisterBrokerRequest{ID: 1, Incarnation: incarnation(1, 0), Listeners: listener(9001)}))
		if err != nil {
			return err
		}
		_, err = l.Propose(ctx, BrokerHeartbeat(metadata.HeartbeatRequest{ID: 1, Epoch: 1, AppliedOffset: res.Offset + 1}))
		return err
	})
	c.net.setFaults(5, 5, 3)
	start := time.Now()
	clock := func() int64 { return int64(time.Since(start)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	stopCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(cl)))
			for stopCtx.Err() == nil {
				op, ok := topicClientOp(stopCtx, c, rng, cl, clock)
				if !ok {
					select {
					case <-c.nextStep():
					case <-stopCtx.Done():
					}
					continue
				}
				mu.Lock()
				history = append(history, op)
				mu.Unlock()
			}
		}()
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	tk := time.NewTicker(stepEvery)
	crashed := uint64(0)
	for step := range steps {
		<-tk.C
		switch r := rng.IntN(100); {
		case step%60 == 59 && crashed != 0:
			c.start(crashed)
			crashed = 0
		case step%60 == 20 && r < 50:
			crashed = c.ids[rng.IntN(voters)]
			c.crash(crashed, r < 25, rng.Uint64())
		case step%60 == 40 && r < 50:
			id := c.ids[rng.IntN(voters)]
			c.net.isolate(id, c.ids, true)
		case step%60 == 55:
			c.net.heal()
		}
		c.step()
	}
	tk.Stop()
	cancel()
	wg.Wait()
	c.converge(seed)
	res, info := porcupine.CheckOperationsVerbose(topicModel, history, time.Minute)
	if res != porcupine.Ok {
		for _, part := range info.PartialLinearizationsOperations() {
			for _, lin := range part {
				for _, op := range lin {
					t.Logf("  %s", topicModel.DescribeOperation(op.Input, op.Output))
				}
			}
		}
		t.Fatalf("history of %d operations is not linearizable (%v)", len(history), res)
	}
	t.Logf("%d operations linearizable", len(history))
}

// topicClientOp runs one random operation and returns it for the history;
// false when it surely had no effect and saw nothing (no leader, not the
// leader, busy), which the history leaves out.
func topicClientOp(ctx context.Context, c *simCluster, rng *rand.Rand, client int, clock func() int64) (porcupine.Operation, bool) {
	name := fmt.Sprintf("t%d", rng.IntN(4))
	var in topicOp
	switch r := rng.IntN(10); {
	case r < 4:
		in = topicOp{kind: "describe", name: name}
	case r < 7:
		id := topicID(rng.IntN(1 << 24))
		in = topicOp{kind: "create", name: name, id: id}
	default:
		in = topicOp{kind: "delete", name: name}
	}
	n := c.leader()
	if in.kind == "describe" {
		n = c.live(c.ids[rng.IntN(len(c.ids))]) // any voter serves reads
	}
	if n == nil {
		return porcupine.Operation{}, false
	}
	opCtx, cancel := context.WithTimeout(ctx, proposalTimeout)
	defer cancel()
	call := clock()
	var out topicOut
	var err error
	switch in.kind {
	case "describe":
		var ti metadata.TopicInfo
		var found bool
		ti, found, err = n.DescribeTopic(opCtx, name)
		if err != nil {
			return porcupine.Operation{}, false // a failed read saw nothing
		}
		if found {
			out.id = ti.ID.String()
		}
	case "create":
		_, err = n.Propose(opCtx, CreateTopic(metadata.CreateTopicRequest{Name: name, ID: in.id}))
	default:
		_, err = n.Propose(opCtx, DeleteTopic(name))
	}
	ret := clock()
	var rej *metadata.Rejection
	var nl *NotLeaderError
	switch {
	case in.kind == "describe":
	case err == nil:
		out.ok = true
	case errors.As(err, &rej):
		out.code = rej.Code
	case errors.As(err, &nl), errors.Is(err, ErrBusy), errors.Is(err, ErrTooLarge):
		return porcupine.Operation{}, false
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrStopped):
		out.unknown = true
		ret = math.MaxInt64 // it may take effect at any later time
	default:
		c.t.Errorf("unexpected error from %s: %v", in.kind, err)
		return porcupine.Operation{}, false
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}, true
}
