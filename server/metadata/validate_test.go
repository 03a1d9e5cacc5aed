package metadata

import (
	"strings"
	"testing"
)

// TestTopicNameError checks, word for word, how a name's fault is told:
// by the character (with its code point beyond ASCII), not by a byte of it.
func TestTopicNameError(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"events", ""},
		{"café", `topic name "café" holds 'é' (U+00E9); only [a-zA-Z0-9._-] are allowed`},
		{"bad/name", `topic name "bad/name" holds '/'; only [a-zA-Z0-9._-] are allowed`},
		{"tab\there", `topic name "tab\there" holds '\t' (U+0009); only [a-zA-Z0-9._-] are allowed`},
		{"x\xc3", `topic name "x\xc3" holds byte 0xC3, which is not UTF-8; only [a-zA-Z0-9._-] are allowed`},
		// 200 characters but 400 bytes: the character is the fault, not the length.
		{strings.Repeat("é", 200), `topic name "` + strings.Repeat("é", 200) + `" holds 'é' (U+00E9); only [a-zA-Z0-9._-] are allowed`},
		{strings.Repeat("a", 250), "topic name is 250 characters long; the most is 249"},
		{"", "topic name is empty; it must be 1 to 249 characters"},
		{"..", `topic name ".." is reserved`},
	} {
		err := TopicNameError(c.name)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("TopicNameError(%q) = %q, want %q", c.name, got, c.want)
		}
		if (err == nil) != (CheckTopicName(c.name) == nil) {
			t.Errorf("TopicNameError(%q) and CheckTopicName disagree", c.name)
		}
	}
}
