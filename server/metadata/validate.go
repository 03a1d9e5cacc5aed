package metadata

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// validateListener checks one advertised listener.
func validateListener(l Listener) error {
	if l.Name == "" || len(l.Name) > maxListenerNameLen {
		return fmt.Errorf("listener name %q must be 1 to %d bytes", l.Name, maxListenerNameLen)
	}
	for i := 0; i < len(l.Name); i++ {
		c := l.Name[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("listener name %q may hold only A-Z, 0-9 and _", l.Name)
		}
	}
	if l.Host == "" || len(l.Host) > maxHostLen {
		return fmt.Errorf("listener host must be 1 to %d bytes", maxHostLen)
	}
	for i := 0; i < len(l.Host); i++ {
		if c := l.Host[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("listener host %q holds a space or control byte", l.Host)
		}
	}
	if l.Port == 0 {
		return fmt.Errorf("listener %s has port 0", l.Name)
	}
	return nil
}

// validateListeners checks a broker's listener list: at least one, at most
// maxListeners, names distinct.
func validateListeners(ls []Listener) error {
	if len(ls) == 0 || len(ls) > maxListeners {
		return fmt.Errorf("a broker needs 1 to %d listeners, got %d", maxListeners, len(ls))
	}
	for i, l := range ls {
		if err := validateListener(l); err != nil {
			return err
		}
		for _, prev := range ls[:i] {
			if prev.Name == l.Name {
				return fmt.Errorf("listener %s named twice", l.Name)
			}
		}
	}
	return nil
}

// validateRack checks a rack name (empty means "no rack").
func validateRack(rack string) error {
	if len(rack) > maxRackLen {
		return fmt.Errorf("rack longer than %d bytes", maxRackLen)
	}
	for i := 0; i < len(rack); i++ {
		if c := rack[i]; c < ' ' || c >= 0x7f {
			return fmt.Errorf("rack %q holds a control byte", rack)
		}
	}
	return nil
}

// Faults of a topic name, in the order CheckTopicName looks for them.
var (
	ErrTopicNameLength   = fmt.Errorf("topic name must be 1 to %d characters of [a-zA-Z0-9._-]", maxTopicNameLen)
	ErrTopicNameReserved = errors.New(`topic name "." or ".." is reserved`)
	ErrTopicNameByte     = errors.New("topic name holds a character outside [a-zA-Z0-9._-]")
)

// CheckTopicName applies Kafka's rules: 1 to 249 bytes of [a-zA-Z0-9._-],
// and not "." or "..", which would name a directory. It reads the name in
// place and its errors do not hold it, so a broker checks a name still in
// a request's buffer before copying any of it, however long it is. It is
// the one rule: the controller's commands and records apply it through
// validateTopicName.
func CheckTopicName[T ~string | ~[]byte](name T) error {
	_, err := topicNameFault(name)
	return err
}

// topicNameFault returns the rule a name breaks, if any, and for
// ErrTopicNameByte the position of the first byte outside the set.
func topicNameFault[T ~string | ~[]byte](name T) (int, error) {
	if len(name) == 0 || len(name) > maxTopicNameLen {
		return 0, ErrTopicNameLength
	}
	if len(name) <= 2 && name[0] == '.' && name[len(name)-1] == '.' {
		return 0, ErrTopicNameReserved
	}
	if i := firstOutsideTopicSet(name); i >= 0 {
		return i, ErrTopicNameByte
	}
	return 0, nil
}

// firstOutsideTopicSet is the position of name's first byte outside
// [a-zA-Z0-9._-], or -1.
func firstOutsideTopicSet[T ~string | ~[]byte](name T) int {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return i
		}
	}
	return -1
}

// TopicNameError is CheckTopicName with the name and the offending
// character in the message, for people: the controller's rejections, the
// metadata log's decoder, and the CLI's account of an INVALID_TOPIC.
func TopicNameError(name string) error { return validateTopicName(name) }

// validateTopicName is CheckTopicName with the name in the message.
func validateTopicName(name string) error {
	at, err := topicNameFault(name)
	if err == ErrTopicNameLength && name != "" && utf8.RuneCountInString(name) <= maxTopicNameLen {
		// Longer in bytes than in characters: a character outside the set
		// (none is one byte) is the fault to name, not the length.
		at, err = firstOutsideTopicSet(name), ErrTopicNameByte
	}
	switch err {
	case nil:
		return nil
	case ErrTopicNameLength:
		if name == "" {
			return fmt.Errorf("topic name is empty; it must be 1 to %d characters", maxTopicNameLen)
		}
		return fmt.Errorf("topic name is %d characters long; the most is %d", utf8.RuneCountInString(name), maxTopicNameLen)
	case ErrTopicNameReserved:
		return fmt.Errorf("topic name %q is reserved", name)
	default:
		return fmt.Errorf("topic name %q holds %s; only [a-zA-Z0-9._-] are allowed", name, describeChar(name[at:]))
	}
}

// describeChar names the character s starts with: 'x' for printable
// ASCII, with its code point for any other ('é' (U+00E9)), and the byte
// for one that does not start valid UTF-8.
func describeChar(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size <= 1:
		return fmt.Sprintf("byte 0x%02X, which is not UTF-8", s[0])
	case r >= ' ' && r < 0x7f:
		return fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf("%q (U+%04X)", r, r)
}

// validateReplicaSet checks a partition's replicas, ISR, ELR, last-known
// ELR and leader against each other: no duplicates; the ISR, ELR and
// last-known ELR within the replicas, in replica order and disjoint; the
// leader in the ISR or none. An empty ISR has no leader.
func validateReplicaSet(replicas, isr, elr, lastKnownELR []int32, leader int32) error {
	if len(replicas) == 0 || len(replicas) > maxReplicationFactor {
		return fmt.Errorf("%d replicas, want 1 to %d", len(replicas), maxReplicationFactor)
	}
	if hasDuplicate(replicas) {
		return fmt.Errorf("replicas %v hold a broker twice", replicas)
	}
	for _, set := range []struct {
		name string
		ids  []int32
	}{{"isr", isr}, {"elr", elr}, {"last-known elr", lastKnownELR}} {
		if hasDuplicate(set.ids) {
			return fmt.Errorf("%s %v holds a broker twice", set.name, set.ids)
		}
		for _, id := range set.ids {
			if !contains(replicas, id) {
				return fmt.Errorf("%s member %d is not a replica", set.name, id)
			}
		}
		if !slices.Equal(set.ids, inReplicaOrder(replicas, set.ids)) {
			return fmt.Errorf("%s %v is not in replica order %v", set.name, set.ids, replicas)
		}
	}
	if len(intersect(isr, elr)) > 0 || len(intersect(lastKnownELR, union(isr, elr))) > 0 {
		return fmt.Errorf("isr %v, elr %v and last-known elr %v overlap", isr, elr, lastKnownELR)
	}
	if leader != NoLeader && !contains(isr, leader) {
		return fmt.Errorf("leader %d is not in the isr %v", leader, isr)
	}
	return nil
}

func contains(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func hasDuplicate(ids []int32) bool {
	for i, x := range ids {
		if contains(ids[:i], x) {
			return true
		}
	}
	return false
}
