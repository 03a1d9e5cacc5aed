package server

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// alterConfigsRetrying alters a topic's configs through node n, retrying
// while no controller can take the change (an election under way).
func (c *testCluster) alterConfigsRetrying(n *clusterNode, topic string, set []string, del ...string) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		cl := newTestClient(c.t, n.clientAddr())
		r := cl.alterConfigs(topic, false, set, del...)
		cl.conn.Close()
		switch r.ErrorCode {
		case fb.ErrorCodeNone:
			return
		case fb.ErrorCodeRequestTimedOut, fb.ErrorCodeNotController:
		default:
			c.t.Fatalf("alter configs of %s on node %d: %v %s", topic, n.id, r.ErrorCode, r.ErrorMessage)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("alter configs of %s on node %d: still %v after %v", topic, n.id, r.ErrorCode, clusterWait)
		}
		time.Sleep(clusterPoll)
	}
}

// waitConfigs polls node n's DescribeConfigs until every key of want has
// its value ("" for the default).
func (c *testCluster) waitConfigs(n *clusterNode, topic string, want map[string]string) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		cl := newTestClient(c.t, n.clientAddr())
		got := cl.describeConfigs(topic)
		cl.conn.Close()
		ok := true
		for k, v := range want {
			g := got[k]
			if g == nil || (v == "" && !g.IsDefault) || (v != "" && (g.IsDefault || g.Value != v)) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: configs of %s not %v within %v", n.id, topic, want, clusterWait)
		}
		time.Sleep(clusterPoll)
	}
}

// TestTopicConfigsThroughControllerFailover runs three `strata serve`
// processes: a config change made through one broker shows on every
// broker and is applied by the partitions' leaders (max.message.bytes
// refuses a larger batch wherever the partition leads); it survives the
// controller leader's death, a change and a partition count increase go
// through a survivor, and the killed broker, restarted, holds them all.
func TestTopicConfigsThroughControllerFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	c := newTestCluster(t, 3)
	const topic = "configured"
	c.createTopic(c.nodes[1], topic, 3, 3)
	for _, n := range c.nodes {
		c.waitMetadata(n, "the topic led", func(md *fb.MetadataResponseT) bool {
			tm := topicOf(md, topic)
			if tm == nil || len(tm.Partitions) != 3 || md.ControllerId <= 0 {
				return false
			}
			for _, p := range tm.Partitions {
				if p.LeaderId < 0 || len(p.Isr) != 3 {
					return false
				}
			}
			return true
		})
	}
	c.alterConfigsRetrying(c.nodes[1], topic, []string{"retention.ms=3600000", "max.message.bytes=2048", "min.insync.replicas=2"})
	want := map[string]string{"retention.ms": "3600000", "max.message.bytes": "2048", "min.insync.replicas": "2"}
	for _, n := range c.nodes {
		c.waitConfigs(n, topic, want)
	}

	// Every partition's leader refuses a batch over the new limit and
	// takes one under it.
	big := func() []byte {
		bb, err := schema.NewBatchBuilder(schema.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := bb.Append(&schema.Record{Value: bytes.Repeat([]byte{'v'}, 4096)}); err != nil {
			t.Fatal(err)
		}
		f, err := bb.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}()
	md := c.metadata(c.nodes[1])
	for _, p := range topicOf(md, topic).Partitions {
		cl := newTestClient(t, c.nodes[p.LeaderId].clientAddr())
		for _, tc := range []struct {
			frame []byte
			code  fb.ErrorCode
		}{{big, fb.ErrorCodeMessageTooLarge}, {batch(t, 0, 2, nowMs()), fb.ErrorCodeNone}} {
			env, _ := cl.call(produceMsg(fb.AcksAll, topic, p.Partition, tc.frame))
			if code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode; code != tc.code {
				t.Fatalf("partition %d on leader %d: %v, want %v", p.Partition, p.LeaderId, code, tc.code)
			}
		}
		cl.conn.Close()
	}

	// Kill the controller leader: the survivors keep the change, and take
	// another one and a partition count increase.
	killed := c.nodes[md.ControllerId]
	killed.kill()
	var survivors []*clusterNode
	for _, n := range c.nodes {
		if n != killed {
			survivors = append(survivors, n)
		}
	}
	for _, n := range survivors {
		c.waitConfigs(n, topic, want)
	}
	c.alterConfigsRetrying(survivors[0], topic, []string{"segment.ms=600000"}, "retention.ms")
	want = map[string]string{"retention.ms": "", "segment.ms": "600000", "max.message.bytes": "2048", "min.insync.replicas": "2"}
	deadline := time.Now().Add(clusterWait)
	for {
		cl := newTestClient(t, survivors[1].clientAddr())
		r := cl.createPartitions(topic, 4, false)
		cl.conn.Close()
		if r.ErrorCode == fb.ErrorCodeNone {
			break
		}
		if (r.ErrorCode != fb.ErrorCodeRequestTimedOut && r.ErrorCode != fb.ErrorCodeNotController) || time.Now().After(deadline) {
			t.Fatalf("create partitions after failover: %v %s", r.ErrorCode, r.ErrorMessage)
		}
		time.Sleep(clusterPoll)
	}
	for _, n := range survivors {
		c.waitConfigs(n, topic, want)
	}

	// Restarted, the killed broker catches up on all of it.
	c.start(killed)
	c.waitReady(killed)
	c.waitConfigs(killed, topic, want)
	c.waitMetadata(killed, "four partitions", func(md *fb.MetadataResponseT) bool {
		tm := topicOf(md, topic)
		return tm != nil && len(tm.Partitions) == 4 && slices.ContainsFunc(tm.Partitions, func(p *fb.PartitionMetadataT) bool {
			return p.Partition == 3 && p.LeaderId >= 0
		})
	})
}
