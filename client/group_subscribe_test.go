package client

import (
	"errors"
	"slices"
	"testing"

	"github.com/strata-db/strata/schema/fb"
)

// TestGroupRegexSubscription: a member subscribed by regex holds the
// partitions of every topic whose whole name matches, and of a matching
// topic created after it joined; a topic whose name only contains a match
// is not subscribed.
func TestGroupRegexSubscription(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "re-a", 1)
	createTopic(t, ctx, cl, "re-b", 2)
	createTopic(t, ctx, cl, "xre-a", 1) // matches re-.* only in part
	own := newOwnership()
	m := startMember(t, b.Addr, own, "re", GroupConfig{GroupID: "regex", TopicRegex: "re-.*"})
	want := []TopicPartition{{Topic: "re-a", Partition: 0}, {Topic: "re-b", Partition: 0}, {Topic: "re-b", Partition: 1}}
	waitGroup(t, "the matching topics' partitions", []*testMember{m}, func() bool { return slices.Equal(m.held(), want) })
	createTopic(t, ctx, cl, "re-c", 1)
	want = append(want, TopicPartition{Topic: "re-c", Partition: 0})
	waitGroup(t, "the new matching topic's partition", []*testMember{m}, func() bool { return slices.Equal(m.held(), want) })
	own.check(t)
}

// TestGroupUnreleasedInstanceID: a second member under an instance id a
// live member holds is refused (UNRELEASED_INSTANCE_ID), which ends it:
// Poll returns the refusal; the first member is not disturbed.
func TestGroupUnreleasedInstanceID(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "inst", 2)
	own := newOwnership()
	cfg := GroupConfig{GroupID: "instances", InstanceID: "host-1", Topics: []string{"inst"}}
	first := startMember(t, b.Addr, own, "first", cfg)
	waitGroup(t, "the first member holding both", []*testMember{first}, func() bool { return len(first.held()) == 2 })
	second := startMember(t, b.Addr, own, "second", cfg)
	waitGroup(t, "the second member's refusal", []*testMember{first}, func() bool { return second.failure() != nil })
	if err := second.failure(); ErrorCode(err) != fb.ErrorCodeUnreleasedInstanceId {
		t.Fatalf("second member: %v, want UNRELEASED_INSTANCE_ID", err)
	}
	var ge *groupError
	if !errors.As(second.failure(), &ge) {
		t.Fatalf("the refusal %v does not say it is the group's", second.failure())
	}
	if len(second.held()) != 0 || len(first.held()) != 2 {
		t.Fatalf("after the refusal: first %v, second %v", first.held(), second.held())
	}
	own.check(t)
}

// TestGroupResubscribe: a member moves its subscription from one topic
// to another; it lets go of the first topic's partitions and takes up the
// second's, and a second member still on the first topic gets them.
func TestGroupResubscribe(t *testing.T) {
	b, cl, ctx := startBroker(t)
	createTopic(t, ctx, cl, "from", 2)
	createTopic(t, ctx, cl, "to", 1)
	own := newOwnership()
	mover := startMember(t, b.Addr, own, "mover", GroupConfig{GroupID: "subs", Topics: []string{"from"}})
	waitGroup(t, "the mover holding from", []*testMember{mover}, func() bool { return len(mover.held()) == 2 })
	stayer := startMember(t, b.Addr, own, "stayer", GroupConfig{GroupID: "subs", Topics: []string{"from"}})
	members := []*testMember{mover, stayer}
	waitGroup(t, "one each", members, func() bool { return balanced(members, "from", 2) })
	// The Poll loop owns the GroupConsumer; Subscribe runs there, from a
	// callback-free moment: stop the loop, subscribe, start it again.
	resubscribed := make(chan error, 1)
	mover.mu.Lock()
	mover.inLoop = func(gc *GroupConsumer) { resubscribed <- gc.Subscribe([]string{"to"}, "") }
	mover.mu.Unlock()
	if err := <-resubscribed; err != nil {
		t.Fatal(err)
	}
	want := []TopicPartition{{Topic: "to", Partition: 0}}
	waitGroup(t, "the mover on to, the stayer on from", members, func() bool {
		return slices.Equal(mover.held(), want) && len(stayer.held()) == 2
	})
	own.check(t)
}
