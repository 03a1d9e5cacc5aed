package metadata

import (
	"fmt"
	"slices"
)

// assignReplicas places partitions × rf replicas on brokers (which must be
// the usable brokers, in id order) the way Kafka's AdminUtils does.
//
// Without racks, partition i's first replica (its preferred leader) is
// broker (i+start) mod n, so preferred leaders go round-robin and each
// broker leads ⌊P/n⌋ or ⌈P/n⌉ partitions; the followers sit at a shift
// from the leader that grows by one every n partitions, so that the
// replicas of neighbouring partitions do not pile onto the same brokers.
//
// With racks, the brokers are first arranged so that racks alternate
// (a1 b1 c1 a2 b2 c2 ...) and the same walk runs over that list, skipping a
// candidate whose rack already holds a replica of the partition (until every
// rack does) or that already is a replica. A partition's replicas are thus
// on distinct racks whenever rf <= the number of racks. When some brokers
// have a rack and others do not, the empty rack counts as one more rack.
//
// start is the caller's random draw: it picks the first leader and the
// initial follower shift, so that topics created one after another do not
// all lead on the same broker, while apply stays deterministic.
func assignReplicas(brokers []*broker, partitions, rf int, start uint32) ([][]int32, error) {
	n := len(brokers)
	if rf < 1 || rf > n {
		return nil, fmt.Errorf("replication factor %d with %d usable brokers", rf, n)
	}
	arranged, rackOf := rackAlternated(brokers)
	numRacks := countRacks(brokers)
	rackAware := numRacks > 1 || (numRacks == 1 && brokers[0].rack != "")
	startIndex := int(start % uint32(n))
	shift := int(start/uint32(n)) % n
	out := make([][]int32, partitions)
	for i := 0; i < partitions; i++ {
		if i > 0 && i%n == 0 {
			shift++
		}
		first := (i + startIndex) % n
		replicas := make([]int32, 1, rf)
		replicas[0] = arranged[first]
		if !rackAware {
			for j := 0; j < rf-1; j++ {
				replicas = append(replicas, arranged[replicaIndex(first, shift, j, n)])
			}
			out[i] = replicas
			continue
		}
		racks := map[string]bool{rackOf[arranged[first]]: true}
		k := 0
		for len(replicas) < rf {
			found := false
			// Every other broker comes up once in n-1 consecutive steps, and
			// an acceptable one always exists while len(replicas) < rf <= n.
			for tries := 0; tries < n && !found; tries++ {
				b := arranged[replicaIndex(first, shift*numRacks, k, n)]
				k++
				rack := rackOf[b]
				if (!racks[rack] || len(racks) == numRacks) && !slices.Contains(replicas, b) {
					replicas = append(replicas, b)
					racks[rack] = true
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("no broker left for replica %d of partition %d", len(replicas), i)
			}
		}
		out[i] = replicas
	}
	return out, nil
}

// replicaIndex is the position of the j-th follower of a partition whose
// leader is at first: never first itself, and cycling through every other
// position as j grows.
func replicaIndex(first, shift, j, n int) int {
	return (first + 1 + (shift+j)%(n-1)) % n
}

// rackAlternated lists broker ids so that racks alternate: the first broker
// of each rack in rack-name order, then the second of each, and so on.
func rackAlternated(brokers []*broker) ([]int32, map[int32]string) {
	rackOf := make(map[int32]string, len(brokers))
	byRack := make(map[string][]int32)
	for _, b := range brokers {
		rackOf[b.id] = b.rack
		byRack[b.rack] = append(byRack[b.rack], b.id)
	}
	racks := make([]string, 0, len(byRack))
	for r := range byRack {
		racks = append(racks, r)
	}
	slices.Sort(racks)
	out := make([]int32, 0, len(brokers))
	for round := 0; len(out) < len(brokers); round++ {
		for _, r := range racks {
			if round < len(byRack[r]) {
				out = append(out, byRack[r][round])
			}
		}
	}
	return out, rackOf
}

func countRacks(brokers []*broker) int {
	seen := make(map[string]bool)
	for _, b := range brokers {
		seen[b.rack] = true
	}
	return len(seen)
}
