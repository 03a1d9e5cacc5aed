package schema

import (
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

// TestLogDirPartitionRatesAbsentReadUnknown: a DescribeLogDirs answer
// whose partitions carry no rate fields, as a broker from before them
// sends, passes the verifier and reads -1 (not known) for both rates, not
// 0 (no traffic); rates that are set come back as sent.
func TestLogDirPartitionRatesAbsentReadUnknown(t *testing.T) {
	m := &fb.MessageT{Type: fb.MessageDescribeLogDirsResponse, Value: &fb.DescribeLogDirsResponseT{LogDir: "/d", Topics: []*fb.LogDirTopicT{
		{Name: "t", Partitions: []*fb.LogDirPartitionT{
			// -1 is the fields' default: the encoder leaves them out.
			{Partition: 0, SizeBytes: 10, BytesInRate: -1, RecordsInRate: -1},
			{Partition: 1, SizeBytes: 20, BytesInRate: 131072.25, RecordsInRate: 0},
		}}}}}
	b := NewEncoder().Encode(headerFor(m, 7), m)
	var e Envelope
	if err := e.DecodeResponse(b); err != nil {
		t.Fatal(err)
	}
	r, err := e.DescribeLogDirsResponse()
	if err != nil {
		t.Fatal(err)
	}
	var tp fb.LogDirTopic
	if !r.Topics(&tp, 0) || tp.PartitionsLength() != 2 {
		t.Fatal("topic missing")
	}
	var p fb.LogDirPartition
	tp.Partitions(&p, 0)
	if tab := p.Table(); tab.Offset(10) != 0 || tab.Offset(12) != 0 {
		t.Fatal("the encoder wrote default rates: the absent case is not tested")
	}
	if p.BytesInRate() != -1 || p.RecordsInRate() != -1 || p.SizeBytes() != 10 {
		t.Fatalf("absent rates read %v, %v (size %d); want -1, -1", p.BytesInRate(), p.RecordsInRate(), p.SizeBytes())
	}
	tp.Partitions(&p, 1)
	if p.BytesInRate() != 131072.25 || p.RecordsInRate() != 0 {
		t.Fatalf("rates read %v, %v; want 131072.25, 0", p.BytesInRate(), p.RecordsInRate())
	}
}
