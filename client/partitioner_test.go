package client

import "testing"

// TestMurmur2KafkaVectors checks Murmur2 against the values the Kafka Java
// client's own tests pin (UtilsTest.testMurmur2), plus the empty key.
func TestMurmur2KafkaVectors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"", 275646681},
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := Murmur2([]byte(c.in)); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestKeyPartitionMasksSign checks that a negative hash is made positive
// by clearing the sign bit, as the Java client does, not by abs.
func TestKeyPartitionMasksSign(t *testing.T) {
	// murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
	if got, want := KeyPartition([]byte("21"), 7), int32(1173551340%7); got != want {
		t.Fatalf("KeyPartition(21, 7) = %d, want %d", got, want)
	}
	for _, k := range []string{"", "a", "user-1", "orders-42"} {
		for n := int32(1); n < 20; n++ {
			if got, want := KeyPartition([]byte(k), n), javaPartition(k, n); got != want {
				t.Fatalf("KeyPartition(%q, %d) = %d, want %d", k, n, got, want)
			}
		}
	}
}

// TestStickyPartitionMoves checks that the next sticky pick is a different
// partition whenever there is one.
func TestStickyPartitionMoves(t *testing.T) {
	for i := 0; i < 200; i++ {
		prev := int32(i % 5)
		if p := stickyPartition(prev, 5); p == prev || p < 0 || p >= 5 {
			t.Fatalf("stickyPartition(%d, 5) = %d", prev, p)
		}
	}
	if p := stickyPartition(0, 1); p != 0 {
		t.Fatalf("one partition: got %d", p)
	}
}
