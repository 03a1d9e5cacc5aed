package replica

import (
	"slices"
	"testing"
)

// TestSetAckUnsyncedAtRunTime: leaving the sync flush policy answers an
// acks=1 produce that waited for durability and moves the high watermark
// to the log end; going back makes the next one wait again, while the
// high watermark stays where it was.
func TestSetAckUnsyncedAtRunTime(t *testing.T) {
	p := solo(t, Config{}, LogState{}, 0)
	if rd := step(p, Produce{ID: 7, Acks: AcksOne, Count: 2}); len(rd.Answers) != 0 {
		t.Fatalf("sync policy: answered before durable: %+v", rd)
	}
	p.SetAckUnsynced(true)
	rd := p.Ready()
	p.Advance()
	if !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 7, Base: 0}}) || rd.HighWatermark != 2 {
		t.Fatalf("after leaving the sync policy: %+v", rd)
	}
	p.SetAckUnsynced(false)
	if rd := step(p, Produce{ID: 8, Acks: AcksOne, Count: 1}); len(rd.Answers) != 0 {
		t.Fatalf("back under the sync policy: answered before durable: %+v", rd)
	}
	if st := p.Status(); st.HighWatermark != 2 {
		t.Fatalf("high watermark %d, want it to stay at 2", st.HighWatermark)
	}
	if rd := step(p, LogDurable{End: 3}); !slices.Equal(rd.Answers, []ProduceAnswer{{ID: 8, Base: 2}}) || rd.HighWatermark != 3 {
		t.Fatalf("after durable: %+v", rd)
	}
}
