package server

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

func TestHWCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := hwKey{metadata.TopicID{1}, 0}
	b := hwKey{metadata.TopicID{2}, 3}
	if err := writeHWFile(dir, 0, encodeHW(nil, map[hwKey]int64{a: 10, b: 7})); err != nil {
		t.Fatal(err)
	}
	// Another shard's file (an older shard count) with an older value of
	// a and a newer one of b: the larger of each wins.
	if err := writeHWFile(dir, 5, encodeHW(nil, map[hwKey]int64{a: 4, b: 9})); err != nil {
		t.Fatal(err)
	}
	got := loadHW(dir)
	if len(got) != 2 || got[a] != 10 || got[b] != 9 {
		t.Fatalf("loaded %v", got)
	}
	// A damaged file is a lost hint, nothing more.
	path := filepath.Join(dir, hwFileName(0))
	raw, _ := os.ReadFile(path)
	raw[9] ^= 0xff
	os.WriteFile(path, raw, 0o644)
	if got := loadHW(dir); got[a] != 4 || got[b] != 9 {
		t.Fatalf("with a damaged file loaded %v", got)
	}
	for _, short := range [][]byte{nil, raw[:5], raw[:len(raw)-1]} {
		if err := decodeHW(short, map[hwKey]int64{}); err == nil {
			t.Fatalf("decoded %d bytes", len(short))
		}
	}
}

// TestBrokerCheckpointsHighWatermarks: a broker's stop leaves each
// partition's high watermark in its shards' files.
func TestBrokerCheckpointsHighWatermarks(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 2)
	c := newTestClient(t, b.Addr().String())
	if code := c.createTopic("hw", 4); code != fb.ErrorCodeNone {
		t.Fatalf("create topic: %v", code)
	}
	for p := int32(0); p < 4; p++ {
		env, _ := c.call(produceMsg(fb.AcksAll, "hw", p, batch(t, 0, int(p)+1, 1000)))
		if code := env.Message.Value.(*fb.ProduceResponseT).Topics[0].Partitions[0].ErrorCode; code != fb.ErrorCodeNone {
			t.Fatalf("produce: %v", code)
		}
	}
	info, _ := b.image.Load().TopicByName("hw")
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	got := loadHW(dir)
	for p := int32(0); p < 4; p++ {
		if hw := got[hwKey{info.ID, p}]; hw != int64(p)+1 {
			t.Fatalf("partition %d: checkpointed high watermark %d, want %d (all: %v)", p, hw, p+1, got)
		}
	}
}
