package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// adminTimeoutMsDefault is the timeout_ms of topic creation and deletion:
// how long the broker may wait for the controller.
const adminTimeoutMsDefault = 30_000

// Admin manages topics and describes the cluster.
type Admin struct {
	cl *Client
}

// NewAdmin returns an admin client using cl.
func NewAdmin(cl *Client) *Admin { return &Admin{cl: cl} }

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name string
	// Partitions is the partition count; 0 takes the broker's default.
	Partitions int32
	// ReplicationFactor is the replica count; 0 takes the broker's default.
	ReplicationFactor int16
	// Configs are topic settings such as "retention.ms"; see docs/.
	Configs map[string]string
}

// CreateTopics creates the topics. The error joins each topic's failure
// (a *schema.CodeError such as TOPIC_ALREADY_EXISTS, with the topic named).
func (a *Admin) CreateTopics(ctx context.Context, topics ...TopicSpec) error {
	req := &fb.CreateTopicsRequestT{TimeoutMs: adminTimeoutMsDefault}
	for _, t := range topics {
		ct := &fb.CreatableTopicT{Name: t.Name, NumPartitions: -1, ReplicationFactor: -1}
		if t.Partitions > 0 {
			ct.NumPartitions = t.Partitions
		}
		if t.ReplicationFactor > 0 {
			ct.ReplicationFactor = t.ReplicationFactor
		}
		keys := make([]string, 0, len(t.Configs))
		for k := range t.Configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ct.Configs = append(ct.Configs, &fb.TopicConfigT{Name: k, Value: t.Configs[k]})
		}
		req.Topics = append(req.Topics, ct)
	}
	var errs []error
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageCreateTopicsRequest, req.Pack(b)
	}
	err := a.cl.request(ctx, fb.ApiKeyCreateTopics, build, func(env *schema.Envelope) error {
		r, err := env.CreateTopicsResponse()
		if err != nil {
			return err
		}
		for i, t := range r.UnPack().Topics {
			if t.ErrorCode != fb.ErrorCodeNone {
				name := answeredName(t.Name, i, len(req.Topics), func(i int) string { return req.Topics[i].Name })
				errs = append(errs, fmt.Errorf("create topic %q: %w", name, adminErr(name, t.ErrorCode, t.ErrorMessage)))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// answeredName is the topic the i-th entry of a CreateTopics or
// DeleteTopics answer is about. The broker does not echo a name too long
// to be valid (it is not copied), but its answer keeps the request's
// order, so the request's i-th name (of n, by requested) is that entry's.
func answeredName(name string, i, n int, requested func(int) string) string {
	if name == "" && i < n {
		return requested(i)
	}
	return name
}

// adminErr is a topic's error in a CreateTopics or DeleteTopics answer.
// The controller's word on whether the topic exists is final, so those
// two codes say so in plain words; any other keeps the broker's message.
func adminErr(name string, code fb.ErrorCode, msg string) error {
	switch code {
	case fb.ErrorCodeTopicAlreadyExists:
		msg = fmt.Sprintf("topic %q already exists", name)
	case fb.ErrorCodeUnknownTopicOrPartition:
		msg = fmt.Sprintf("topic %q does not exist", name)
	}
	return &schema.CodeError{Code: code, Message: msg}
}

// DeleteTopics deletes the topics; the error joins each topic's failure.
func (a *Admin) DeleteTopics(ctx context.Context, names ...string) error {
	req := &fb.DeleteTopicsRequestT{TopicNames: names, TimeoutMs: adminTimeoutMsDefault}
	var errs []error
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		return fb.MessageDeleteTopicsRequest, req.Pack(b)
	}
	err := a.cl.request(ctx, fb.ApiKeyDeleteTopics, build, func(env *schema.Envelope) error {
		r, err := env.DeleteTopicsResponse()
		if err != nil {
			return err
		}
		for i, t := range r.UnPack().Topics {
			if t.ErrorCode != fb.ErrorCodeNone {
				name := answeredName(t.Name, i, len(names), func(i int) string { return names[i] })
				errs = append(errs, fmt.Errorf("delete topic %q: %w", name, adminErr(name, t.ErrorCode, t.ErrorMessage)))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range names {
		a.cl.invalidate(n)
	}
	return errors.Join(errs...)
}

// ListTopics returns the names of every topic, sorted.
func (a *Admin) ListTopics(ctx context.Context) ([]string, error) {
	res, err := a.cl.fetchMetadata(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(res.topics))
	for _, t := range res.topics {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	return names, nil
}

// DescribeTopics returns the partitions of the named topics (none: every
// topic), with leader, leader epoch, replicas and ISR. A topic that does
// not exist comes back with Err set and fails the call too.
func (a *Admin) DescribeTopics(ctx context.Context, names ...string) ([]TopicInfo, error) {
	var want []string
	if len(names) > 0 {
		want = names
	}
	res, err := a.cl.fetchMetadata(ctx, want)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, t := range res.topics {
		if t.Err != nil {
			errs = append(errs, t.Err) // it names the topic
		}
	}
	slices.SortFunc(res.topics, func(x, y TopicInfo) int {
		switch {
		case x.Name < y.Name:
			return -1
		case x.Name > y.Name:
			return 1
		}
		return 0
	})
	return res.topics, errors.Join(errs...)
}

// DescribeCluster returns the brokers, the controller id and the cluster id.
func (a *Admin) DescribeCluster(ctx context.Context) (ClusterInfo, error) {
	res, err := a.cl.fetchMetadata(ctx, []string{})
	if err != nil {
		return ClusterInfo{}, err
	}
	slices.SortFunc(res.cluster.Brokers, func(x, y BrokerInfo) int { return int(x.NodeID) - int(y.NodeID) })
	return res.cluster, nil
}

// QuorumInfo is the controller quorum as its leader sees it.
type QuorumInfo struct {
	LeaderID       int32 // -1 when no leader is known
	Term           uint64
	CommitIndex    uint64
	LogEnd         uint64 // the leader's last log index
	MetadataOffset uint64 // metadata records the leader has applied
	Voters         []QuorumVoter
}

// QuorumVoter is one voter's replication state on the leader.
type QuorumVoter struct {
	ID     int32
	LogEnd uint64 // the index up to which its log matches the leader's
	Lag    uint64 // entries behind the leader's log end
	Active bool   // heard from within the last election timeout
}

// DescribeQuorum returns the controller quorum: leader, term, commit
// index, and each voter's log end and lag.
func (a *Admin) DescribeQuorum(ctx context.Context) (QuorumInfo, error) {
	var out QuorumInfo
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		fb.DescribeQuorumRequestStart(b)
		return fb.MessageDescribeQuorumRequest, fb.DescribeQuorumRequestEnd(b)
	}
	err := a.cl.request(ctx, fb.ApiKeyDescribeQuorum, build, func(env *schema.Envelope) error {
		r, err := env.DescribeQuorumResponse()
		if err != nil {
			return err
		}
		if r.ErrorCode() != fb.ErrorCodeNone {
			return &schema.CodeError{Code: r.ErrorCode()}
		}
		t := r.UnPack()
		out = QuorumInfo{LeaderID: t.LeaderId, Term: t.Term, CommitIndex: t.CommitIndex, LogEnd: t.LogEnd, MetadataOffset: t.MetadataOffset}
		for _, v := range t.Voters {
			out.Voters = append(out.Voters, QuorumVoter{ID: v.VoterId, LogEnd: v.LogEnd, Lag: v.Lag, Active: v.Active})
		}
		return nil
	})
	return out, err
}
