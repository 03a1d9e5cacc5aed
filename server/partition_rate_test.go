package server

import (
	"math"
	"testing"
	"time"
)

// The rate window driven by explicit time: what it counts, what slides out
// of it, and what it divides by.
func TestRateWindowMath(t *testing.T) {
	const t0 = 1_700_000_000_000 // a wall clock in ms, on a bucket boundary
	approx := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}

	t.Run("steady traffic over a whole window", func(t *testing.T) {
		w := newRateWindow(time.Minute) // 6 buckets of 10 s
		w.startEpoch(3, t0-120_000)
		// 1000 bytes and 10 records every second for two minutes.
		for s := int64(-120); s < 0; s++ {
			w.add(t0+s*1000, 1000, 10)
		}
		// At t0 the window is the 5 full buckets before t0's and t0's own
		// (empty, begun): 50 s of traffic over 50 s.
		b, r := w.rates(t0)
		approx(t, "bytes/s", b, 1000)
		approx(t, "records/s", r, 10)
	})

	t.Run("traffic slides out bucket by bucket", func(t *testing.T) {
		w := newRateWindow(time.Minute)
		w.startEpoch(1, t0-3_600_000)
		w.add(t0, 60_000, 600) // one burst in bucket t0/10s
		for _, c := range []struct {
			at          int64
			bytesPerSec float64
		}{
			{t0, 60_000 / 50.0},            // span: 5 full buckets before, none of this one
			{t0 + 5_000, 60_000 / 55.0},    // half of this bucket passed
			{t0 + 59_999, 60_000 / 59.999}, // the burst's bucket is the oldest of six
			{t0 + 60_000, 0},               // it left the window
			{t0 + 10*60_000, 0},            // long after
			{t0 + 6*10_000 + 5_000, 0},     // the ring came round to its slot
			{t0 + 6*10_000*100 + 1_000, 0}, // many turns later
			{t0 + 20_000, 60_000 / 50.0},   // 2 buckets on: still in
		} {
			b, _ := w.rates(c.at)
			approx(t, "bytes/s at t0+"+time.Duration((c.at-t0)*1e6).String(), b, c.bytesPerSec)
		}
	})

	t.Run("a bucket reused a ring turn later starts empty", func(t *testing.T) {
		w := newRateWindow(time.Minute)
		w.startEpoch(1, t0-3_600_000)
		w.add(t0, 1_000_000, 1000)
		w.add(t0+60_000, 600, 6) // the same slot, one turn later
		b, r := w.rates(t0 + 60_000)
		approx(t, "bytes/s", b, 600/50.0)
		approx(t, "records/s", r, 6/50.0)
	})

	t.Run("a new leader's rate is over the time it has led", func(t *testing.T) {
		w := newRateWindow(time.Minute)
		w.startEpoch(4, t0+2_000)
		w.add(t0+3_000, 30_000, 300)
		w.add(t0+21_000, 30_000, 300)
		b, r := w.rates(t0 + 22_000) // 20 s led
		approx(t, "bytes/s", b, 60_000/20.0)
		approx(t, "records/s", r, 600/20.0)
		// Never over less than one bucket: the first request is no burst.
		w.startEpoch(5, t0+100_000)
		w.add(t0+100_001, 5_000, 5)
		b, _ = w.rates(t0 + 100_002)
		approx(t, "bytes/s right after a start", b, 5_000/10.0)
	})

	t.Run("a new epoch starts from nothing, the same epoch keeps counting", func(t *testing.T) {
		w := newRateWindow(time.Minute)
		w.startEpoch(1, t0-60_000)
		w.add(t0-1_000, 1_000_000, 1000)
		w.startEpoch(1, t0) // no change
		if b, _ := w.rates(t0); b == 0 {
			t.Fatal("the same epoch dropped its traffic")
		}
		w.startEpoch(2, t0)
		if b, r := w.rates(t0 + 1); b != 0 || r != 0 {
			t.Fatalf("after a new epoch: %v bytes/s, %v records/s; want 0", b, r)
		}
	})

	t.Run("a clock stepped back counts nothing from the future", func(t *testing.T) {
		w := newRateWindow(time.Minute)
		w.startEpoch(1, t0-600_000)
		w.add(t0, 100_000, 100)
		b, _ := w.rates(t0 - 120_000) // two minutes back: the bucket lies ahead
		approx(t, "bytes/s", b, 0)
		w.add(t0-120_000, 5_000, 5)
		b, _ = w.rates(t0 - 120_000)
		approx(t, "bytes/s back in time", b, 5_000/50.0)
	})

	t.Run("short windows", func(t *testing.T) {
		w := newRateWindow(3 * time.Second) // buckets of 500 ms
		w.startEpoch(1, t0-10_000)
		for ms := int64(-10_000); ms < 0; ms += 100 {
			w.add(t0+ms, 1_000, 1)
		}
		b, r := w.rates(t0)
		approx(t, "bytes/s", b, 10_000)
		approx(t, "records/s", r, 10)
	})
}

func TestHotPartitionsRule(t *testing.T) {
	even := make([]PartitionRate, 6)
	for i := range even {
		even[i] = PartitionRate{BytesPerSec: 10 << 20, RecordsPerSec: 10_000}
	}
	for i, f := range HotPartitions(even) {
		if f != 0 {
			t.Fatalf("even load: partition %d flagged %vx", i, f)
		}
	}

	// One key: every record on partition 2, none on the others, whatever
	// the partition count (Kafka's common 3 included).
	for _, n := range []int{2, 3, 6} {
		oneKey := make([]PartitionRate, n)
		oneKey[1] = PartitionRate{BytesPerSec: 1 << 20, RecordsPerSec: 1000}
		for i, f := range HotPartitions(oneKey) {
			if want := map[bool]float64{true: math.Inf(1), false: 0}[i == 1]; f != want {
				t.Fatalf("one key on %d partitions: partition %d flagged %vx, want %v", n, i, f, want)
			}
		}
	}
	// Most traffic on one: 9 times the mean of the other five.
	mostly := []PartitionRate{{BytesPerSec: 9e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}}
	for i, f := range HotPartitions(mostly) {
		if want := map[bool]float64{true: 9, false: 0}[i == 0]; math.Abs(f-want) > 1e-9 {
			t.Fatalf("9x skew: partition %d flagged %vx, want %v", i, f, want)
		}
	}

	// The same skew below both floors is no load.
	idle := make([]PartitionRate, 6)
	idle[2] = PartitionRate{BytesPerSec: HotBytesFloorPerSec - 1, RecordsPerSec: HotRecordsFloorPerSec - 1}
	if f := HotPartitions(idle)[2]; f != 0 {
		t.Fatalf("below the floors: flagged %vx", f)
	}
	// Either floor reached is enough: many small records.
	small := make([]PartitionRate, 6)
	small[2] = PartitionRate{BytesPerSec: 20_000, RecordsPerSec: 2_000}
	if f := HotPartitions(small)[2]; !math.IsInf(f, 1) {
		t.Fatalf("above the records floor: flagged %vx, want all of it", f)
	}

	// The factor must be passed, not met: exactly 4 times the others.
	met := []PartitionRate{{BytesPerSec: 4e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}}
	if f := HotPartitions(met)[0]; f != 0 {
		t.Fatalf("%d times the others: flagged %vx", HotFactor, f)
	}
	// A topic of one partition has nothing to compare with.
	if f := HotPartitions([]PartitionRate{{BytesPerSec: 1 << 30}})[0]; f != 0 {
		t.Fatalf("one partition: flagged %vx", f)
	}

	// Skewed but not 4 times the mean: 3 partitions at 2x the others.
	skew := []PartitionRate{{BytesPerSec: 2e6}, {BytesPerSec: 2e6}, {BytesPerSec: 2e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}, {BytesPerSec: 1e6}}
	for i, f := range HotPartitions(skew) {
		if f != 0 {
			t.Fatalf("2x skew: partition %d flagged %vx", i, f)
		}
	}
	if got := HotPartitions(nil); len(got) != 0 {
		t.Fatalf("no partitions: %v", got)
	}
}

func TestHotPartitionWindowSetting(t *testing.T) {
	if d, err := hotPartitionWindow(0); err != nil || d != HotPartitionWindowDefault {
		t.Fatalf("0: %v, %v", d, err)
	}
	if d, err := hotPartitionWindow(5 * time.Second); err != nil || d != 5*time.Second {
		t.Fatalf("5s: %v, %v", d, err)
	}
	for _, d := range []time.Duration{-time.Second, HotPartitionWindowMin - time.Millisecond} {
		if _, err := hotPartitionWindow(d); err == nil {
			t.Fatalf("%v accepted", d)
		}
	}
}
