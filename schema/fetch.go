package schema

import (
	"errors"
	"fmt"

	"github.com/strata-db/strata/schema/fb"
)

// A Fetch response travels as
//
//	+--------+---------------------+---------------------------------------+
//	| length | Envelope            | trailing frame bytes                  |
//	| u32 LE | (FetchResponse)     | region 1 | region 2 | ... | region k  |
//	+--------+---------------------+---------------------------------------+
//	 <- length counts this -->
//
// The length prefix counts only the envelope. The trailing bytes are not
// in the FlatBuffer, because the broker splices them from the segment files
// straight to the socket. Region i belongs to the i-th partition entry of
// the response, counting topics in order and partitions in order within
// each topic, and is exactly that entry's frames_bytes long (often 0). The
// trailing byte count is therefore the sum of every frames_bytes.
//
// A region starts at a frame boundary and holds whole frames, except that
// its last frame may be cut short where the partition's byte limit fell; a
// reader takes frames with NextFrame until it reports ErrFramePartial and
// drops the rest.

// FetchTrailingBytesMax bounds the trailing bytes of one Fetch response,
// whatever the request's max_bytes.
const FetchTrailingBytesMax = 1 << 30

// Fetch errors.
var (
	ErrFetchTrailing = errors.New("schema: fetch response trailing bytes out of bounds")
	ErrFramePartial  = errors.New("schema: frame cut short at the end of a fetch region")
)

// FetchTrailingBytes is how many bytes follow the envelope of r. It fails
// when the sum passes limit (or FetchTrailingBytesMax when limit is not in
// (0, FetchTrailingBytesMax]); a client passes its request's max_bytes.
func FetchTrailingBytes(r *fb.FetchResponse, limit int64) (int64, error) {
	if limit <= 0 || limit > FetchTrailingBytesMax {
		limit = FetchTrailingBytesMax
	}
	var total int64
	var t fb.FetchTopicResponse
	var p fb.FetchPartitionResponse
	for i := 0; i < r.TopicsLength(); i++ {
		r.Topics(&t, i)
		for j := 0; j < t.PartitionsLength(); j++ {
			t.Partitions(&p, j)
			total += int64(p.FramesBytes())
			if total > limit {
				return 0, fmt.Errorf("%w: more than %d", ErrFetchTrailing, limit)
			}
		}
	}
	return total, nil
}

// FetchRegions walks the partition entries of a Fetch response together
// with their regions of the trailing bytes.
type FetchRegions struct {
	resp     fb.FetchResponse
	trailing []byte
	topic    fb.FetchTopicResponse
	ti, pi   int
	off      int64
}

// Reset starts a walk over r and its trailing bytes, which must be exactly
// as many as FetchTrailingBytes says.
func (it *FetchRegions) Reset(r *fb.FetchResponse, trailing []byte) error {
	n, err := FetchTrailingBytes(r, FetchTrailingBytesMax)
	if err != nil {
		return err
	}
	if n != int64(len(trailing)) {
		return fmt.Errorf("%w: response says %d, have %d", ErrFetchTrailing, n, len(trailing))
	}
	*it = FetchRegions{resp: *r, trailing: trailing}
	return nil
}

// Next fills p with the next partition entry and returns its topic name
// and region; ok is false after the last.
func (it *FetchRegions) Next(p *fb.FetchPartitionResponse) (topic, region []byte, ok bool) {
	for it.ti < it.resp.TopicsLength() {
		it.resp.Topics(&it.topic, it.ti)
		if it.pi < it.topic.PartitionsLength() {
			it.topic.Partitions(p, it.pi)
			it.pi++
			n := int64(p.FramesBytes())
			region = it.trailing[it.off : it.off+n]
			it.off += n
			return it.topic.Name(), region, true
		}
		it.ti, it.pi = it.ti+1, 0
	}
	return nil, nil, false
}

// NextFrame splits the first frame off region. It returns ErrFramePartial
// when region ends inside a frame (the cut-short last frame of a fetch),
// and the frame length error when the length field itself is impossible.
// An empty region also gives ErrFramePartial: loop while rest is not
// empty. The frame is only split off, not checked: see CheckFrame and
// BatchReader.
func NextFrame(region []byte) (frame, rest []byte, err error) {
	if len(region) < FrameHeaderSize {
		return nil, region, ErrFramePartial
	}
	n, err := PeekFrameLength(region, MaxFrameBytes)
	if err != nil {
		return nil, region, err
	}
	if n > len(region) {
		return nil, region, ErrFramePartial
	}
	return region[:n:n], region[n:], nil
}
