package group

import "slices"

// CommitRequest is one OffsetCommit.
type CommitRequest struct {
	GroupID string
	// MemberID and MemberEpoch fence the commit. An admin commit, which
	// belongs to no member, has an empty MemberID and a negative epoch and
	// is accepted only while the group has no members.
	MemberID    string
	MemberEpoch int32
	Offsets     []CommitOffset
}

// CommitOffset is one partition's offset to commit.
type CommitOffset struct {
	TopicPartition
	Offset   int64
	Metadata string
}

// CommitResponse answers a commit: an error for the whole request, or one
// per partition in request order.
type CommitResponse struct {
	Error      ErrorCode
	Partitions []ErrorCode
}

// CommitOffsets stores offsets. A member's commit is accepted only at its
// current member epoch and only for partitions it holds now (including
// ones it is revoking, so it can commit its progress before letting go);
// a member that lost a partition cannot overwrite its new owner's offsets.
func (c *Coordinator) CommitOffsets(req CommitRequest, nowMs int64) (CommitResponse, []Record) {
	resp := c.commit(req, nowMs)
	return resp, c.take()
}

func (c *Coordinator) commit(req CommitRequest, nowMs int64) CommitResponse {
	if req.GroupID == "" || len(req.GroupID) > maxGroupIDLen || len(req.Offsets) > maxCommitPartitions {
		return CommitResponse{Error: ErrInvalidRequest}
	}
	g := c.groups[req.GroupID]
	var m *member
	if req.MemberID == "" {
		if req.MemberEpoch >= 0 {
			return CommitResponse{Error: ErrInvalidRequest}
		}
		if g != nil && len(g.members) > 0 {
			return CommitResponse{Error: ErrUnknownMemberID}
		}
	} else {
		if g == nil || g.members[req.MemberID] == nil {
			return CommitResponse{Error: ErrUnknownMemberID}
		}
		m = g.members[req.MemberID]
		if req.MemberEpoch <= 0 || req.MemberEpoch != m.epoch {
			return CommitResponse{Error: ErrStaleMemberEpoch}
		}
	}
	resp := CommitResponse{Partitions: make([]ErrorCode, len(req.Offsets))}
	for i, o := range req.Offsets {
		switch {
		case o.Topic == "" || len(o.Topic) > maxTopicNameLen || o.Partition < 0 || o.Offset < 0:
			resp.Partitions[i] = ErrInvalidRequest
		case len(o.Metadata) > maxOffsetMetadataLen:
			resp.Partitions[i] = ErrOffsetMetadataTooLarge
		case m != nil && !m.assigned.has(o.TopicPartition) && !m.pending.has(o.TopicPartition):
			resp.Partitions[i] = ErrStaleMemberEpoch
		default:
			if g == nil {
				c.emit(Record{Type: RecordGroup, Group: req.GroupID, EmptySinceMs: nowMs})
				g = c.groups[req.GroupID]
			}
			c.emit(Record{Type: RecordOffset, Group: g.id, Topic: o.Topic, Partition: o.Partition,
				Offset: o.Offset, Metadata: o.Metadata, CommitMs: nowMs})
		}
	}
	return resp
}

// FetchRequest is one OffsetFetch. A member's fetch (MemberID set) is
// fenced like its commits, so a member that was fenced learns it before it
// resumes from offsets it no longer owns; an admin fetch leaves MemberID
// empty.
type FetchRequest struct {
	GroupID     string
	MemberID    string
	MemberEpoch int32
	// Partitions to fetch; nil fetches every committed offset.
	Partitions []TopicPartition
}

// FetchedOffset is one partition's committed offset, Offset -1 if none.
type FetchedOffset struct {
	TopicPartition
	OffsetAndMetadata
}

// FetchOffsets reads committed offsets. It changes nothing.
func (c *Coordinator) FetchOffsets(req FetchRequest) ([]FetchedOffset, ErrorCode) {
	g := c.groups[req.GroupID]
	if req.MemberID != "" {
		if g == nil || g.members[req.MemberID] == nil {
			return nil, ErrUnknownMemberID
		}
		if m := g.members[req.MemberID]; req.MemberEpoch <= 0 || req.MemberEpoch != m.epoch {
			return nil, ErrStaleMemberEpoch
		}
	}
	parts := req.Partitions
	if parts == nil && g != nil {
		parts = make([]TopicPartition, 0, len(g.offsets))
		for tp := range g.offsets {
			parts = append(parts, tp)
		}
		slices.SortFunc(parts, compareTP)
	}
	out := make([]FetchedOffset, len(parts))
	for i, tp := range parts {
		out[i] = FetchedOffset{TopicPartition: tp, OffsetAndMetadata: OffsetAndMetadata{Offset: -1}}
		if g != nil {
			if o, ok := g.offsets[tp]; ok {
				out[i].OffsetAndMetadata = o
			}
		}
	}
	return out, ErrNone
}

// expireOffsets deletes the offsets of a group that has been empty for
// longer than the retention, and then the group itself. An offset lives at
// least the retention from its own commit too, so an admin commit into a
// long-empty group is not deleted at once.
func (c *Coordinator) expireOffsets(g *group, nowMs int64) {
	if len(g.members) > 0 || g.emptySinceMs < 0 {
		return
	}
	parts := make([]TopicPartition, 0, len(g.offsets))
	for tp := range g.offsets {
		parts = append(parts, tp)
	}
	slices.SortFunc(parts, compareTP)
	for _, tp := range parts {
		if nowMs-max(g.emptySinceMs, g.offsets[tp].CommitMs) > c.cfg.OffsetsRetentionMs {
			c.emit(Record{Type: RecordOffset, Tombstone: true, Group: g.id, Topic: tp.Topic, Partition: tp.Partition})
		}
	}
	if len(g.offsets) == 0 {
		c.emit(Record{Type: RecordGroup, Tombstone: true, Group: g.id})
	}
}
