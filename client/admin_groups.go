package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// Group states, as the coordinator names them.
const (
	GroupStateEmpty       = schema.GroupStateEmpty
	GroupStateAssigning   = schema.GroupStateAssigning
	GroupStateReconciling = schema.GroupStateReconciling
	GroupStateStable      = schema.GroupStateStable
	GroupStateDead        = schema.GroupStateDead
)

// GroupListing is one group as ListGroups finds it.
type GroupListing struct {
	GroupID string
	State   string
}

// ListGroups lists the groups of the cluster, sorted: every live broker
// is asked for the groups it coordinates. A broker that does not answer
// fails the call (its groups would be missing).
func (a *Admin) ListGroups(ctx context.Context) ([]GroupListing, error) {
	info, err := a.DescribeCluster(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []GroupListing
	var errs []error
	for _, b := range info.Brokers {
		if b.Fenced {
			continue
		}
		var got []GroupListing
		err := a.cl.retryCall(ctx, "list groups on "+b.Addr(), func(ctx context.Context) error {
			got = got[:0]
			build := func(fbb *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
				return fb.MessageListGroupsRequest, (&fb.ListGroupsRequestT{}).Pack(fbb)
			}
			return a.cl.groupRequest(ctx, b.Addr(), fb.ApiKeyListGroups, build, func(env *schema.Envelope) error {
				r, err := env.ListGroupsResponse()
				if err != nil {
					return err
				}
				t := r.UnPack()
				if t.ErrorCode != fb.ErrorCodeNone {
					return &schema.CodeError{Code: t.ErrorCode}
				}
				for _, g := range t.Groups {
					got = append(got, GroupListing{GroupID: g.GroupId, State: g.GroupState})
				}
				return nil
			})
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("broker %d (%s): %w", b.NodeID, b.Addr(), err))
			continue
		}
		for _, g := range got {
			if !seen[g.GroupID] {
				seen[g.GroupID] = true
				out = append(out, g)
			}
		}
	}
	slices.SortFunc(out, func(x, y GroupListing) int { return strings.Compare(x.GroupID, y.GroupID) })
	return out, errors.Join(errs...)
}

// GroupDescription is a group as its coordinator describes it.
type GroupDescription struct {
	GroupID         string
	State           string // GroupStateEmpty, ..., GroupStateDead for a group that does not exist
	GroupEpoch      int32
	AssignmentEpoch int32
	Assignor        string
	Coordinator     string // HOST:PORT
	Members         []GroupMemberDescription
}

// GroupMemberDescription is one member of a described group.
type GroupMemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Epoch      int32
	Topics     []string
	TopicRegex string
	Assignor   string
	// Assignment is what the member may own now; PendingRevocation what it
	// was asked to give up and has not yet; Target what it will own once
	// reconciled.
	Assignment        []TopicPartition
	PendingRevocation []TopicPartition
	Target            []TopicPartition
}

// DescribeGroup asks the group's coordinator for its state and members,
// sorted by member id. A group the coordinator does not know is
// GROUP_ID_NOT_FOUND.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	var out GroupDescription
	err := a.onCoordinator(ctx, "describe group "+fmt.Sprintf("%q", group), group, func(ctx context.Context, addr string) error {
		build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
			return fb.MessageConsumerGroupDescribeRequest, (&fb.ConsumerGroupDescribeRequestT{GroupIds: []string{group}}).Pack(b)
		}
		return a.cl.groupRequest(ctx, addr, fb.ApiKeyConsumerGroupDescribe, build, func(env *schema.Envelope) error {
			r, err := env.ConsumerGroupDescribeResponse()
			if err != nil {
				return err
			}
			for _, g := range r.UnPack().Groups {
				if g.GroupId != group {
					continue
				}
				if g.ErrorCode == fb.ErrorCodeGroupIdNotFound {
					return &schema.CodeError{Code: g.ErrorCode, Message: fmt.Sprintf("group %q does not exist", group)}
				}
				if g.ErrorCode != fb.ErrorCodeNone {
					return &schema.CodeError{Code: g.ErrorCode, Message: g.ErrorMessage}
				}
				out = GroupDescription{GroupID: g.GroupId, State: g.GroupState, GroupEpoch: g.GroupEpoch,
					AssignmentEpoch: g.AssignmentEpoch, Assignor: g.AssignorName, Coordinator: addr}
				for _, m := range g.Members {
					out.Members = append(out.Members, GroupMemberDescription{MemberID: m.MemberId, InstanceID: m.InstanceId,
						ClientID: m.ClientId, ClientHost: m.ClientHost, Epoch: m.MemberEpoch, Topics: m.SubscribedTopicNames,
						TopicRegex: m.SubscribedTopicRegex, Assignor: m.ServerAssignor, Assignment: flatParts(m.Assignment),
						PendingRevocation: flatParts(m.PendingRevocation), Target: flatParts(m.TargetAssignment)})
				}
				slices.SortFunc(out.Members, func(x, y GroupMemberDescription) int { return strings.Compare(x.MemberID, y.MemberID) })
				return nil
			}
			return fmt.Errorf("describe group %q: the coordinator's answer leaves the group out", group)
		})
	})
	return out, err
}

// onCoordinator runs call on the group's coordinator, looking it up again
// and retrying (inside RetryTimeoutMs) when it moved or is not ready.
func (a *Admin) onCoordinator(ctx context.Context, what, group string, call func(ctx context.Context, addr string) error) error {
	return a.cl.retryCall(ctx, what, func(ctx context.Context) error {
		addr, err := a.cl.coordinatorOnce(ctx, group)
		if err != nil {
			return err
		}
		return call(ctx, addr)
	})
}

// GroupOffset is one partition's committed offset in a group, with its
// log end and the lag between them.
type GroupOffset struct {
	TopicPartition
	Committed int64 // -1: nothing committed
	LogEnd    int64 // -1: unknown (the leader did not answer)
	// Lag is LogEnd - Committed, or -1 when either is unknown.
	Lag int64
	// Member is the id of the member that holds the partition now, "" for
	// none.
	Member string
}

// GroupOffsets returns the committed offset, log end and lag of every
// partition of the group: those with a committed offset and those its
// members hold, sorted. desc, from DescribeGroup, names the holders; the
// zero value names none. Log ends that cannot be had are -1, and the
// first such failure is returned with the offsets.
func (a *Admin) GroupOffsets(ctx context.Context, group string, desc GroupDescription) ([]GroupOffset, error) {
	committed, err := a.CommittedOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	byTP := map[TopicPartition]*GroupOffset{}
	add := func(tp TopicPartition) *GroupOffset {
		o := byTP[tp]
		if o == nil {
			o = &GroupOffset{TopicPartition: tp, Committed: -1, LogEnd: -1, Lag: -1}
			byTP[tp] = o
		}
		return o
	}
	for tp, off := range committed {
		add(tp).Committed = off
	}
	for _, m := range desc.Members {
		for _, tp := range append(slices.Clone(m.Assignment), m.PendingRevocation...) {
			add(tp).Member = m.MemberID
		}
	}
	byTopic := map[string][]int32{}
	for tp := range byTP {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	var endErr error
	for topic, parts := range byTopic {
		slices.Sort(parts)
		ends, err := a.cl.ListOffsets(ctx, topic, parts, OffsetLatest)
		if err != nil {
			if endErr == nil {
				endErr = err
			}
			continue
		}
		for p, end := range ends {
			o := byTP[TopicPartition{Topic: topic, Partition: p}]
			o.LogEnd = end
			if o.Committed >= 0 {
				o.Lag = max(end-o.Committed, 0)
			}
		}
	}
	out := make([]GroupOffset, 0, len(byTP))
	for _, o := range byTP {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(x, y GroupOffset) int { return compareTP(x.TopicPartition, y.TopicPartition) })
	return out, endErr
}

// CommittedOffsets returns every offset the group has committed (an
// admin OffsetFetch: no member, not fenced).
func (a *Admin) CommittedOffsets(ctx context.Context, group string) (map[TopicPartition]int64, error) {
	var out map[TopicPartition]int64
	err := a.onCoordinator(ctx, fmt.Sprintf("fetch the offsets of group %q", group), group, func(ctx context.Context, addr string) error {
		offs, err := a.cl.fetchOffsetsOnce(ctx, addr, group, groupMember{}, nil)
		if err != nil {
			return err
		}
		out = make(map[TopicPartition]int64, len(offs))
		var errs []error
		for tp, co := range offs {
			if co.err != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, co.err))
				continue
			}
			if co.offset >= 0 {
				out[tp] = co.offset
			}
		}
		return errors.Join(errs...)
	})
	return out, err
}

// ResetOffsets commits offsets for the group as an admin (no member). The
// coordinator accepts it only while the group has no members; otherwise
// it fails with NON_EMPTY_GROUP. A group that does not exist is created
// empty with the offsets.
func (a *Admin) ResetOffsets(ctx context.Context, group string, offsets map[TopicPartition]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	return a.onCoordinator(ctx, fmt.Sprintf("reset the offsets of group %q", group), group, func(ctx context.Context, addr string) error {
		per, err := a.cl.commitOnce(ctx, addr, group, groupMember{}, offsets)
		if ErrorCode(err) == fb.ErrorCodeUnknownMemberId {
			// An admin commit names no member: the coordinator refuses it
			// this way while the group has members.
			return &schema.CodeError{Code: fb.ErrorCodeNonEmptyGroup,
				Message: fmt.Sprintf("group %q has members; its offsets can be reset only while it has none", group)}
		}
		if err != nil {
			return err
		}
		var errs []error
		parts := make([]TopicPartition, 0, len(per))
		for tp := range per {
			parts = append(parts, tp)
		}
		slices.SortFunc(parts, compareTP)
		for _, tp := range parts {
			if perr := per[tp]; perr != nil {
				errs = append(errs, fmt.Errorf("%s/%d at offset %d: %w", tp.Topic, tp.Partition, offsets[tp], perr))
			}
		}
		return errors.Join(errs...)
	})
}

// DeleteGroups deletes empty groups and their committed offsets. The
// error joins each group's failure: NON_EMPTY_GROUP while it has
// members, GROUP_ID_NOT_FOUND for one that does not exist.
func (a *Admin) DeleteGroups(ctx context.Context, groups ...string) error {
	var errs []error
	for _, group := range groups {
		err := a.onCoordinator(ctx, fmt.Sprintf("delete group %q", group), group, func(ctx context.Context, addr string) error {
			build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
				return fb.MessageDeleteGroupsRequest, (&fb.DeleteGroupsRequestT{GroupIds: []string{group}}).Pack(b)
			}
			return a.cl.groupRequest(ctx, addr, fb.ApiKeyDeleteGroups, build, func(env *schema.Envelope) error {
				r, err := env.DeleteGroupsResponse()
				if err != nil {
					return err
				}
				for _, res := range r.UnPack().Results {
					if res.GroupId != group {
						continue
					}
					switch res.ErrorCode {
					case fb.ErrorCodeNone:
						return nil
					case fb.ErrorCodeNonEmptyGroup:
						return &schema.CodeError{Code: res.ErrorCode, Message: fmt.Sprintf("group %q has members", group)}
					case fb.ErrorCodeGroupIdNotFound:
						return &schema.CodeError{Code: res.ErrorCode, Message: fmt.Sprintf("group %q does not exist", group)}
					}
					return &schema.CodeError{Code: res.ErrorCode, Message: res.ErrorMessage}
				}
				return fmt.Errorf("delete group %q: the coordinator's answer leaves the group out", group)
			})
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
