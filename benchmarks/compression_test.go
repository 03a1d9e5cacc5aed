package main

import (
	"os"
	"strings"
	"testing"
)

// The compression section, quick: one round of both codecs on one broker.
// Each case reads back every record it produced; the uncompressed topic
// stores at least the payload, the lz4 one well under it (JSON-like
// values compress), and the Markdown has the section's table.
func TestQuickCompression(t *testing.T) {
	res, mdPath := runQuick(t, "compression smoke", "--compression-only", "--client-cpus", "0")
	if res.Compression == nil || len(res.Strata) != 0 || res.Peer != nil || res.Replication != nil {
		t.Fatalf("compression %+v, %d suites, peer %v, replication %v: want the compression section alone",
			res.Compression, len(res.Strata), res.Peer, res.Replication)
	}
	c := res.Compression
	if len(c.Rounds) != 1 || len(c.Rounds[0].Cases) != len(compressionCodecs) || len(c.Medians) != len(compressionCodecs) {
		t.Fatalf("rounds %+v, medians %+v: want one round of %v", c.Rounds, c.Medians, compressionCodecs)
	}
	for _, k := range c.Rounds[0].Cases {
		if k.Produce.Records != compressionQuickRecords || k.Consume.Records != k.Produce.Records {
			t.Errorf("%s: produced %d, read %d records, want %d each", k.Codec, k.Produce.Records, k.Consume.Records, compressionQuickRecords)
		}
		if k.Produce.Bytes != k.Produce.Records*compressionRecordBytes || k.StoredBytes <= 0 {
			t.Errorf("%s: payload %d bytes, stored %d", k.Codec, k.Produce.Bytes, k.StoredBytes)
		}
		switch k.Codec {
		case "none":
			if k.StoredBytes < k.Produce.Bytes {
				t.Errorf("uncompressed: %d bytes stored for %d of payload", k.StoredBytes, k.Produce.Bytes)
			}
		case "lz4":
			if k.CompressionRatio < 1.5 {
				t.Errorf("lz4: ratio %.2f (%d bytes stored for %d), want JSON-like values to compress", k.CompressionRatio, k.StoredBytes, k.Produce.Bytes)
			}
		}
		if k.ProducerCPU <= 0 || k.ConsumerCPU <= 0 || k.BrokerProduceCPU <= 0 {
			t.Errorf("%s: CPU seconds producer %v broker %v consumer %v, want each measured", k.Codec, k.ProducerCPU, k.BrokerProduceCPU, k.ConsumerCPU)
		}
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Compression") {
		t.Error("results Markdown lacks the compression table")
	}
}
