package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-db/strata/schema/fb"
	"golang.org/x/sys/unix"
)

const (
	// emptyTopicPartitions is the partition count of the disk use test.
	emptyTopicPartitions = 6
	// emptyTopicBlocksMaxBytes is the most an empty 6-partition topic may
	// hold on disk: segment files grow with their data (segment.Config's
	// AllocateStepBytes), so an empty partition holds a few pages.
	emptyTopicBlocksMaxBytes = 6 << 20
)

// topicAllocatedBytes sums the allocated blocks (stat's st_blocks, in 512-byte
// units) of every file in a topic's partition folders.
func topicAllocatedBytes(t *testing.T, dataDir, topic string, partitions int) int64 {
	t.Helper()
	var total int64
	for p := 0; p < partitions; p++ {
		dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, p))
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			t.Fatalf("partition folder %s is empty", dir)
		}
		for _, e := range ents {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
				t.Fatal(err)
			}
			total += st.Blocks * 512
		}
	}
	return total
}

// TestEmptyTopicDiskUse creates a 6-partition topic on a real broker and,
// before anything is produced, sums the blocks its partition folders hold:
// at most 6 MiB, before and after a restart. (Each partition used to hold a
// preallocated 1 GiB segment and 25 MiB of indexes.)
func TestEmptyTopicDiskUse(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("empty", emptyTopicPartitions); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	served := func(c *testClient) {
		t.Helper()
		for p := int32(0); p < emptyTopicPartitions; p++ {
			env, _ := c.call(fetchMsg("empty", p, 0, 0, 0))
			fr := env.Message.Value.(*fb.FetchResponseT).Topics[0].Partitions[0]
			if fr.ErrorCode != fb.ErrorCodeNone || fr.HighWatermark != 0 {
				t.Fatalf("fetch p%d: %v hw %d", p, fr.ErrorCode, fr.HighWatermark)
			}
		}
	}
	served(c)
	n := topicAllocatedBytes(t, dir, "empty", emptyTopicPartitions)
	t.Logf("empty %d-partition topic: %d bytes allocated", emptyTopicPartitions, n)
	if n > emptyTopicBlocksMaxBytes {
		t.Fatalf("an empty %d-partition topic holds %d bytes on disk, want at most %d", emptyTopicPartitions, n, emptyTopicBlocksMaxBytes)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir, 2)
	defer b.Stop()
	served(newTestClient(t, b.Addr().String()))
	if n := topicAllocatedBytes(t, dir, "empty", emptyTopicPartitions); n > emptyTopicBlocksMaxBytes {
		t.Fatalf("after a restart the empty topic holds %d bytes on disk, want at most %d", n, emptyTopicBlocksMaxBytes)
	}
}
