package client

import (
	"errors"
	"fmt"
	"testing"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// TestDeleteRecords produces 1000 records, deletes those below 400: the
// low watermark is 400, the earliest offset is 400, a consumer from the
// earliest offset starts at 400 with the record produced there, and one
// positioned at 100 (below the log start) resets to 400. An offset past
// the high watermark is refused with OFFSET_OUT_OF_RANGE and moves
// nothing; DeleteRecordsHighWatermark deletes everything of another
// topic.
func TestDeleteRecords(t *testing.T) {
	_, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "trim", 1)
	createTopic(t, ctx, cl, "all", 1)
	p, err := NewProducer(cl, ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"trim", "all"} {
		for i := 0; i < 1000; i++ {
			if err := p.Send(ctx, &Record{Topic: topic, Value: []byte(fmt.Sprint(i))}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	admin := NewAdmin(cl)
	_, err = admin.DeleteRecords(ctx, "trim", map[int32]int64{0: 1001})
	var ce *schema.CodeError
	if !errors.As(err, &ce) || ce.Code != fb.ErrorCodeOffsetOutOfRange {
		t.Fatalf("delete before 1001 of 1000: %v", err)
	}
	low, err := admin.DeleteRecords(ctx, "trim", map[int32]int64{0: 400})
	if err != nil || low[0] != 400 {
		t.Fatalf("delete records: %v %v", low, err)
	}
	if low, err := admin.DeleteRecords(ctx, "all", map[int32]int64{0: DeleteRecordsHighWatermark}); err != nil || low[0] != 1000 {
		t.Fatalf("delete every committed record: %v %v", low, err)
	}
	earliest, err := cl.ListOffsets(ctx, "trim", []int32{0}, OffsetEarliest)
	if err != nil || earliest[0] != 400 {
		t.Fatalf("earliest: %v %v", earliest, err)
	}
	if earliest, err := cl.ListOffsets(ctx, "all", []int32{0}, OffsetEarliest); err != nil || earliest[0] != 1000 {
		t.Fatalf("earliest of the emptied partition: %v %v", earliest, err)
	}

	c := NewConsumer(cl, ConsumerConfig{Reset: ResetEarliest, MaxWaitMs: 100})
	defer c.Close()
	if err := c.Assign("trim", 0); err != nil {
		t.Fatal(err)
	}
	recs, err := c.Poll(ctx)
	if err != nil || len(recs) == 0 || recs[0].Offset != 400 || string(recs[0].Value) != "400" {
		t.Fatalf("consumer from the earliest: %v, %d records, first %+v", err, len(recs), first(recs))
	}
	c.Seek("trim", 0, 100)
	recs, err = c.Poll(ctx)
	if err != nil || len(recs) == 0 || recs[0].Offset != 400 {
		t.Fatalf("consumer at 100, below the log start: %v, first %+v", err, first(recs))
	}
}

func first(recs []Record) *Record {
	if len(recs) == 0 {
		return nil
	}
	return &recs[0]
}
