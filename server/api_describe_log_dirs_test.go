package server

import (
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestDescribeLogDirs asks a broker of two shards for its folder: every
// partition it keeps, with exactly the bytes of the frames appended to it,
// the folder's file system space, and errors for an unknown and an invalid
// topic.
func TestDescribeLogDirs(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	defer b.Stop()
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("kept", 3); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	want := map[int32]int64{0: 0, 1: 0, 2: 0}
	for i, p := range []int32{0, 2, 2} {
		frames := batch(t, i*10, 5+i, 1000)
		env, _ := c.call(produceMsg(fb.AcksAll, "kept", p, frames))
		if r := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0]; r.ErrorCode != fb.ErrorCodeNone {
			t.Fatalf("produce: %v", r.ErrorCode)
		}
		want[p] += int64(len(frames))
	}
	check := func(resp *fb.DescribeLogDirsResponseT, topic *fb.LogDirTopicT) {
		t.Helper()
		if resp.ErrorCode != fb.ErrorCodeNone || resp.LogDir != dir || resp.TotalBytes <= 0 || resp.UsableBytes < 0 || resp.UsableBytes > resp.TotalBytes {
			t.Fatalf("folder: %+v", resp)
		}
		if topic.Name != "kept" || topic.ErrorCode != fb.ErrorCodeNone || len(topic.Partitions) != 3 {
			t.Fatalf("topic: %+v", topic)
		}
		for _, p := range topic.Partitions {
			if p.ErrorCode != fb.ErrorCodeNone || p.SizeBytes != want[p.Partition] {
				t.Fatalf("partition %d: %v, %d bytes, want %d", p.Partition, p.ErrorCode, p.SizeBytes, want[p.Partition])
			}
		}
	}

	env, _ := c.call(&fb.MessageT{Type: fb.MessageDescribeLogDirsRequest, Value: &fb.DescribeLogDirsRequestT{}})
	resp := env.Message.Value.(*fb.DescribeLogDirsResponseT)
	if len(resp.Topics) != 1 {
		t.Fatalf("every topic: %d topics, want 1", len(resp.Topics))
	}
	check(resp, resp.Topics[0])

	env, _ = c.call(&fb.MessageT{Type: fb.MessageDescribeLogDirsRequest, Value: &fb.DescribeLogDirsRequestT{
		Topics: []string{"gone", "kept", "bad name", "kept"}}})
	resp = env.Message.Value.(*fb.DescribeLogDirsResponseT)
	if len(resp.Topics) != 3 {
		t.Fatalf("named topics: %d answers, want 3 (a name asked twice is answered once)", len(resp.Topics))
	}
	if r := resp.Topics[0]; r.Name != "gone" || r.ErrorCode != fb.ErrorCodeUnknownTopicOrPartition {
		t.Fatalf("unknown topic: %+v", r)
	}
	check(resp, resp.Topics[1])
	if r := resp.Topics[2]; r.Name != "bad name" || r.ErrorCode != fb.ErrorCodeInvalidTopic {
		t.Fatalf("invalid topic: %+v", r)
	}

	env, _ = c.call(&fb.MessageT{Type: fb.MessageDescribeLogDirsRequest, Value: &fb.DescribeLogDirsRequestT{Topics: []string{}}})
	if resp = env.Message.Value.(*fb.DescribeLogDirsResponseT); len(resp.Topics) != 0 || resp.TotalBytes <= 0 {
		t.Fatalf("no topics: %+v", resp)
	}
}

// sharedNameLogDirs is a DescribeLogDirs request of entries names that all
// point at one string.
func sharedNameLogDirs(corr int32, entries int, name []byte) []byte {
	enc := schema.NewEncoder()
	bld := enc.Builder()
	nameOff := bld.CreateByteString(name)
	fb.DescribeLogDirsRequestStartTopicsVector(bld, entries)
	for range entries {
		bld.PrependUOffsetT(nameOff)
	}
	tv := bld.EndVector(entries)
	fb.DescribeLogDirsRequestStart(bld)
	fb.DescribeLogDirsRequestAddTopics(bld, tv)
	return finishRequest(enc, corr, fb.MessageDescribeLogDirsRequest, fb.DescribeLogDirsRequestEnd(bld))
}
