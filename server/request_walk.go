package server

import (
	"cmp"
	"slices"

	"github.com/strata-db/strata/schema/fb"
	"github.com/strata-db/strata/server/metadata"
)

// Every handler reads its request's topics and partitions through one
// requestWalk, so that every API has the same bounds and the same rules
// (docs/protocol.md, "Request walk").
//
// The verifier proves a request's offsets land inside it, but FlatBuffers
// lets any number of offsets point at one string, vector or table. The walk
// charges each string, vector and table it reads at the least its bytes
// take when nothing is shared (vtables, which encoders share by design,
// are never charged) against the request's own length. A request that
// shares nothing can never run out; one that makes a handler read the same
// bytes over and over does, and is refused whole before a handler has done
// more than the request's length of work. A handler then allocates at most
// a fixed multiple of the request's size (FuzzHandlerAllocs;
// TestSharedNameRequestsBoundRSS for a broker process).
const (
	// topicsPerRequestMax bounds the topic entries or topic names of one
	// request of any API.
	topicsPerRequestMax = 10000
	// partitionsPerRequestMax bounds the partition entries of one request
	// of any API, across its topics.
	partitionsPerRequestMax = 10000

	// tableEntryBytes is the least an unshared table in a vector of tables
	// takes: its uoffset in the vector and its own soffset.
	tableEntryBytes = 8
	// vectorSlotBytes is the uoffset a string takes in a vector of strings.
	vectorSlotBytes = 4
	// stringOverheadBytes is a string's length word and NUL terminator.
	stringOverheadBytes = 5
	// vectorOverheadBytes is a vector's length word.
	vectorOverheadBytes = 4
)

// requestWalk is the walk of one request. Its zero value is not usable;
// start one with newRequestWalk.
type requestWalk struct {
	msg         []byte // the whole request: frames regions are positions in it
	budgetBytes int    // what is left to charge
	topics      int
	partitions  int
	// regions are the non-empty frames vectors of a produce, as
	// [start, end) positions in msg.
	regions []framesRegion
	// claimed holds the (topic, partition) pairs a produce writes to, and
	// names the topics a create or delete names.
	claimed map[topicPartition]struct{}
	names   map[string]struct{}
}

type framesRegion struct{ start, end int }

type topicPartition struct {
	topic     string
	partition int32
}

func newRequestWalk(msg []byte) *requestWalk {
	return &requestWalk{msg: msg, budgetBytes: len(msg)}
}

// charge spends n bytes of the budget; false when the request has none
// left for them.
func (w *requestWalk) charge(n int) bool {
	if n < 0 || n > w.budgetBytes {
		w.budgetBytes = 0
		return false
	}
	w.budgetBytes -= n
	return true
}

// topic counts one topic entry that takes entryBytes besides its name
// (tableEntryBytes for a table, vectorSlotBytes for a name in a vector of
// strings) and charges it with its name. A valid name comes back copied,
// with code NONE; an invalid one comes back with code INVALID_TOPIC, copied
// only when it is no longer than a valid name may be (so that a client
// finds its answer by name), else empty. ok is false when the request breaks the walk's bounds:
// the handler answers INVALID_REQUEST.
func (w *requestWalk) topic(entryBytes int, raw []byte) (name string, code fb.ErrorCode, ok bool) {
	if w.topics++; w.topics > topicsPerRequestMax {
		return "", fb.ErrorCodeInvalidRequest, false
	}
	if !w.charge(entryBytes + stringOverheadBytes + len(raw)) {
		return "", fb.ErrorCodeInvalidRequest, false
	}
	if metadata.CheckTopicName(raw) != nil {
		if len(raw) > metadata.TopicNameBytesMax {
			return "", fb.ErrorCodeInvalidTopic, true
		}
		return string(raw), fb.ErrorCodeInvalidTopic, true
	}
	return string(raw), fb.ErrorCodeNone, true
}

// partition counts one partition entry and charges its table.
func (w *requestWalk) partition() bool {
	if w.partitions++; w.partitions > partitionsPerRequestMax {
		return false
	}
	return w.charge(tableEntryBytes)
}

// entry charges one table of a vector other than topics and partitions
// (a topic's configs).
func (w *requestWalk) entry() bool { return w.charge(tableEntryBytes) }

// str charges a string and returns it copied.
func (w *requestWalk) str(raw []byte) (string, bool) {
	if !w.charge(stringOverheadBytes + len(raw)) {
		return "", false
	}
	return string(raw), true
}

// frames charges a produce partition's frames vector and records where it
// lies in the request. frames is what the generated accessor returned: a
// slice of msg cut as msg[i:j], so it starts at cap(msg)-cap(frames).
func (w *requestWalk) frames(frames []byte) bool {
	if !w.charge(vectorOverheadBytes + len(frames)) {
		return false
	}
	if len(frames) > 0 {
		start := cap(w.msg) - cap(frames)
		w.regions = append(w.regions, framesRegion{start: start, end: start + len(frames)})
	}
	return true
}

// framesDisjoint reports whether no two frames vectors recorded share a
// byte. The broker patches base offset and leader epoch into each frame in
// place, so two parts over the same bytes would each overwrite the
// other's. Encoders lay parts out in any order, so the regions are sorted
// by position first.
func (w *requestWalk) framesDisjoint() bool {
	slices.SortFunc(w.regions, func(a, b framesRegion) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(w.regions); i++ {
		if w.regions[i].start < w.regions[i-1].end {
			return false
		}
	}
	return true
}

// claimPartition records that the request writes to a partition; false
// when it already did.
func (w *requestWalk) claimPartition(topic string, partition int32) bool {
	if w.claimed == nil {
		w.claimed = map[topicPartition]struct{}{}
	}
	k := topicPartition{topic, partition}
	if _, dup := w.claimed[k]; dup {
		return false
	}
	w.claimed[k] = struct{}{}
	return true
}

// claimTopic records a topic name the request acts on; false when it
// already did.
func (w *requestWalk) claimTopic(name string) bool {
	if w.names == nil {
		w.names = map[string]struct{}{}
	}
	if _, dup := w.names[name]; dup {
		return false
	}
	w.names[name] = struct{}{}
	return true
}
