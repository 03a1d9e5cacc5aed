package client

import (
	"slices"
	"sync"
)

// AllPartitions in an assignment stands for every partition of the topic,
// resolved from the metadata when the consumer adopts the assignment.
const AllPartitions int32 = -1

// Assignor decides which partitions a consumer reads. The consumer asks
// it at every Poll and adopts a new set when the generation changes:
// partitions that stay keep their positions, new ones start unpositioned
// (the reset policy, or a Seek, places them), dropped ones are forgotten.
//
// StaticAssignor is what Consumer.Assign uses; a GroupConsumer plugs the
// partitions its group's coordinator assigns (once each is positioned at
// its committed offset) in through ConsumerConfig.Assignor.
type Assignor interface {
	// Assignment returns the current partitions and a generation number
	// that changes whenever they change. The slice must not be modified.
	Assignment() (generation uint64, partitions []TopicPartition)
}

// StaticAssignor is an assignment the application sets by hand. It is
// safe for concurrent use.
type StaticAssignor struct {
	mu    sync.Mutex
	gen   uint64
	parts []TopicPartition
}

// Assignment implements Assignor.
func (s *StaticAssignor) Assignment() (uint64, []TopicPartition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, s.parts
}

// Set replaces the topic's partitions in the assignment with partitions
// (AllPartitions, or none at all, for every partition of it).
func (s *StaticAssignor) Set(topic string, partitions ...int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make([]TopicPartition, 0, len(s.parts)+len(partitions))
	for _, tp := range s.parts {
		if tp.Topic != topic {
			next = append(next, tp)
		}
	}
	if len(partitions) == 0 || slices.Contains(partitions, AllPartitions) {
		next = append(next, TopicPartition{Topic: topic, Partition: AllPartitions})
	} else {
		for _, p := range partitions {
			next = append(next, TopicPartition{Topic: topic, Partition: p})
		}
	}
	s.parts = next
	s.gen++
}

// Remove drops a topic from the assignment.
func (s *StaticAssignor) Remove(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts = slices.DeleteFunc(slices.Clone(s.parts), func(tp TopicPartition) bool { return tp.Topic == topic })
	s.gen++
}
