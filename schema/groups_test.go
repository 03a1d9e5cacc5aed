package schema

import "testing"

// The expected values follow String.hashCode's definition over UTF-16 code
// units ("polygenelubricants" is the well-known string whose hash is the
// smallest int; "😀" is a surrogate pair).
func TestJavaStringHash(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int32
	}{
		{"", 0},
		{"a", 97},
		{"group", 98629247},
		{"my-consumer-group", 1513705513},
		{"billing", -109829509},
		{"polygenelubricants", -1 << 31},
		{"é", 233},
		{"😀", 1772899},
	} {
		if got := JavaStringHash(c.s); got != c.want {
			t.Errorf("JavaStringHash(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}

func TestGroupPartition(t *testing.T) {
	if got := GroupPartition("group", 50); got != 98629247%50 {
		t.Fatalf("group: %d", got)
	}
	if got := GroupPartition("billing", 50); got != 109829509%50 {
		t.Fatalf("negative hash: %d", got)
	}
	// Kafka's Utils.abs maps the smallest int to 0.
	if got := GroupPartition("polygenelubricants", 50); got != 0 {
		t.Fatalf("min int hash: %d", got)
	}
}
