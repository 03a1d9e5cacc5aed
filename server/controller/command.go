package controller

import (
	"maps"
	"slices"

	"github.com/strata-db/strata/server/metadata"
)

// Command is one metadata command for the leader's metadata.Controller.
// Build one with the functions below; the Node runs it on its goroutine.
type Command struct {
	name string
	run  func(c *metadata.Controller, nowMs int64) ([]metadata.Record, error)
}

func (c Command) String() string { return c.name }

// RegisterBroker registers a broker process.
func RegisterBroker(req metadata.RegisterBrokerRequest) Command {
	req.Listeners = slices.Clone(req.Listeners)
	return Command{"RegisterBroker", func(c *metadata.Controller, now int64) ([]metadata.Record, error) {
		return c.RegisterBroker(req, now)
	}}
}

// BrokerHeartbeat renews a broker's session.
func BrokerHeartbeat(req metadata.HeartbeatRequest) Command {
	return Command{"BrokerHeartbeat", func(c *metadata.Controller, now int64) ([]metadata.Record, error) {
		return c.BrokerHeartbeat(req, now)
	}}
}

// FenceBroker fences a broker as a lapsed session would.
func FenceBroker(id int32) Command {
	return Command{"FenceBroker", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.FenceBroker(id)
	}}
}

// UnfenceBroker unfences a broker as a caught-up heartbeat would.
func UnfenceBroker(id int32) Command {
	return Command{"UnfenceBroker", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.UnfenceBroker(id)
	}}
}

// ControlledShutdown moves a broker out of service.
func ControlledShutdown(id int32, epoch int64) Command {
	return Command{"ControlledShutdown", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.ControlledShutdown(id, epoch)
	}}
}

// ReportOfflineReplica moves a partition away from a broker whose replica
// of it went offline (its storage failed).
func ReportOfflineReplica(req metadata.OfflineReplicaRequest) Command {
	return Command{"ReportOfflineReplica", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.ReportOfflineReplica(req)
	}}
}

// CreateTopic creates a topic.
func CreateTopic(req metadata.CreateTopicRequest) Command {
	req.Configs = maps.Clone(req.Configs)
	return Command{"CreateTopic", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.CreateTopic(req)
	}}
}

// ValidateCreateTopic checks a creation against the leader's state without
// making it (CreateTopics' validate_only): it runs on a copy, so it
// proposes no records, and its answer, like any command's, follows every
// proposal before it.
func ValidateCreateTopic(req metadata.CreateTopicRequest) Command {
	req.Configs = maps.Clone(req.Configs)
	return Command{"ValidateCreateTopic", func(c *metadata.Controller, now int64) ([]metadata.Record, error) {
		st, err := metadata.Restore(c.State().AppendSnapshot(nil))
		if err != nil {
			return nil, err
		}
		cfg := metadata.Config{SessionTimeoutMs: c.SessionTimeoutMs()}
		if _, err := metadata.NewController(st, cfg, now).CreateTopic(req); err != nil {
			return nil, err
		}
		return nil, nil
	}}
}

// DeleteTopic deletes a topic.
func DeleteTopic(name string) Command {
	return Command{"DeleteTopic", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.DeleteTopic(name)
	}}
}

// AlterPartition applies a partition leader's ISR change.
func AlterPartition(req metadata.AlterPartitionRequest) Command {
	req.ISR = slices.Clone(req.ISR)
	return Command{"AlterPartition", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.AlterPartition(req)
	}}
}

// AlterPartitionView is the partition as the leader's state holds it once
// an AlterPartition has run there, accepted or refused. The proposer
// needs it either way: an acceptance gives the epochs its next request
// builds on, and a refusal the ISR and epochs it was refused against.
type AlterPartitionView struct {
	// Found is false when the command never ran on a leader (it answered
	// not leader, busy, stopped) or the partition does not exist.
	Found     bool
	Partition metadata.PartitionInfo
}

// AlterPartitionReporting is AlterPartition that also fills *view. The
// node's goroutine writes *view before Propose returns, and Propose's
// answer orders that write before the caller's read. The view of a
// refusal may include records proposed but not yet committed; the
// refusal itself waits for them (see runCommand), so when the caller
// sees it, they are committed too.
func AlterPartitionReporting(req metadata.AlterPartitionRequest, view *AlterPartitionView) Command {
	req.ISR = slices.Clone(req.ISR)
	return Command{"AlterPartition", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		records, err := c.AlterPartition(req)
		view.Partition, view.Found = c.State().PartitionByID(req.TopicID, req.Partition)
		return records, err
	}}
}

// ElectLeader elects a partition leader by the election rules.
func ElectLeader(topic string, partition int32) Command {
	return Command{"ElectLeader", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.ElectLeader(topic, partition)
	}}
}

// tickCommand is the leader's periodic session check; onFence (may be
// nil) hears of every broker it fences, and why.
func tickCommand(onFence func(metadata.Fence)) Command {
	return Command{"Tick", func(c *metadata.Controller, now int64) ([]metadata.Record, error) {
		records, err := c.Tick(now)
		if err == nil && onFence != nil {
			for _, f := range c.LastFences() {
				onFence(f)
			}
		}
		return records, err
	}}
}

// BrokerConnectionLost reports that a broker's session connection to
// this leader ended (metadata.ConnectionLostRequest): unless it heartbeats
// on a newer connection within the grace, a Tick fences it. Only the
// leader's own RPC listener sends it, about connections it accepted.
func BrokerConnectionLost(req metadata.ConnectionLostRequest) Command {
	return Command{"BrokerConnectionLost", func(c *metadata.Controller, now int64) ([]metadata.Record, error) {
		return c.BrokerConnectionLost(req, now)
	}}
}

// AlterTopicConfigs changes a topic's configs (metadata.AlterTopicConfigs).
func AlterTopicConfigs(req metadata.AlterTopicConfigsRequest) Command {
	req.Set, req.Delete = maps.Clone(req.Set), slices.Clone(req.Delete)
	return Command{"AlterTopicConfigs", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.AlterTopicConfigs(req)
	}}
}

// CreatePartitions grows a topic's partition count.
func CreatePartitions(req metadata.CreatePartitionsRequest) Command {
	return Command{"CreatePartitions", func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		return c.CreatePartitions(req)
	}}
}

// Validate runs cmd against a copy of the leader's state and proposes
// nothing (the validate_only of IncrementalAlterConfigs and
// CreatePartitions): its answer is the command's, as of every proposal
// before it.
func Validate(cmd Command) Command {
	return Command{"Validate" + cmd.name, func(c *metadata.Controller, now int64) ([]metadata.Record, error) {
		st, err := metadata.Restore(c.State().AppendSnapshot(nil))
		if err != nil {
			return nil, err
		}
		cfg := metadata.Config{SessionTimeoutMs: c.SessionTimeoutMs()}
		if _, err := cmd.run(metadata.NewController(st, cfg, now), now); err != nil {
			return nil, err
		}
		return nil, nil
	}}
}
