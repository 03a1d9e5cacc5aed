package client

import (
	"context"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// LogDirInfo is one broker's data folder: its file system's size and what
// is still usable on it, and the partitions the broker keeps there.
type LogDirInfo struct {
	Dir         string
	TotalBytes  int64 // -1: unknown
	UsableBytes int64 // -1: unknown
	Topics      []LogDirTopic
}

// LogDirTopic is a topic's partitions in a log folder. Err is set when
// the broker does not know the topic (or its name is invalid).
type LogDirTopic struct {
	Name       string
	Err        error
	Partitions []LogDirPartition
}

// LogDirPartition is one partition kept in a log folder: the bytes of its
// segment data, or the error that kept the broker from reading it (a
// partition whose disk failed). Where the broker leads the partition, it
// also gives the partition's produce traffic per second over its rate
// window (the broker's --hot-partition-window); the rates are -1 where it
// does not lead it, with Err, and from a broker that does not say them.
type LogDirPartition struct {
	Partition     int32
	SizeBytes     int64 // -1 with Err
	BytesInRate   float64
	RecordsInRate float64
	Err           error
}

// DescribeLogDirs asks the broker at addr (HOST:PORT, as BrokerInfo.Addr
// gives it) about its data folder and the partitions of the named topics
// it keeps there (none named: every topic). Each broker answers for its
// own folder only.
func (a *Admin) DescribeLogDirs(ctx context.Context, addr string, topics ...string) (LogDirInfo, error) {
	var out LogDirInfo
	conn, err := a.cl.connTo(ctx, addr)
	if err != nil {
		return out, err
	}
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		var list flatbuffers.UOffsetT
		if len(topics) > 0 {
			names := make([]flatbuffers.UOffsetT, len(topics))
			for i, t := range topics {
				names[i] = b.CreateString(t)
			}
			fb.DescribeLogDirsRequestStartTopicsVector(b, len(names))
			for i := len(names) - 1; i >= 0; i-- {
				b.PrependUOffsetT(names[i])
			}
			list = b.EndVector(len(names))
		}
		fb.DescribeLogDirsRequestStart(b)
		if len(topics) > 0 {
			fb.DescribeLogDirsRequestAddTopics(b, list)
		}
		return fb.MessageDescribeLogDirsRequest, fb.DescribeLogDirsRequestEnd(b)
	}
	err = conn.roundTrip(ctx, fb.ApiKeyDescribeLogDirs, build, func(env *schema.Envelope) error {
		r, err := env.DescribeLogDirsResponse()
		if err != nil {
			return err
		}
		if r.ErrorCode() != fb.ErrorCodeNone {
			return &schema.CodeError{Code: r.ErrorCode()}
		}
		t := r.UnPack()
		out = LogDirInfo{Dir: t.LogDir, TotalBytes: t.TotalBytes, UsableBytes: t.UsableBytes}
		for i, tt := range t.Topics {
			lt := LogDirTopic{Name: tt.Name}
			if lt.Name == "" && len(topics) == len(t.Topics) {
				lt.Name = topics[i] // a name too long to echo: the answer keeps the request's order
			}
			if tt.ErrorCode != fb.ErrorCodeNone {
				lt.Err = fmt.Errorf("topic %q: %w", lt.Name, &schema.CodeError{Code: tt.ErrorCode})
			}
			for _, p := range tt.Partitions {
				lp := LogDirPartition{Partition: p.Partition, SizeBytes: p.SizeBytes, BytesInRate: p.BytesInRate, RecordsInRate: p.RecordsInRate}
				if p.ErrorCode != fb.ErrorCodeNone {
					lp.Err = &schema.CodeError{Code: p.ErrorCode}
				}
				lt.Partitions = append(lt.Partitions, lp)
			}
			out.Topics = append(out.Topics, lt)
		}
		return nil
	})
	return out, err
}
