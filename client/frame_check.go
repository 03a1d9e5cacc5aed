package client

import "github.com/strata-db/strata/schema"

// trailingReadChunkBytes bounds one read of a fetch answer's trailing
// bytes when their frames are checked as they arrive: small enough that
// the bytes a read just copied are still in the CPU cache when their CRCs
// are computed, large enough that the reads stay few.
const trailingReadChunkBytes = 256 << 10

// frameCheck checks the CRCs of a fetch answer's frames on the
// connection's reader while the trailing bytes arrive, each frame right
// after the read that completed it. Every whole frame that ends at or
// before checkedEnd (an offset in the trailing bytes) has a good CRC;
// decoding skips computing those CRCs again. The check stops at the first
// frame that fails or cannot be parsed and leaves that frame to the
// decoder, which reports it.
type frameCheck struct {
	regions    []int64 // frames_bytes of each partition entry, in order
	ri         int     // region holding pos
	regionEnd  int64
	pos        int64 // start of the next frame to check
	checkedEnd int64
	stopped    bool
}

// begin prepares for a new answer's trailing bytes; addRegion then gives
// each partition entry's frames_bytes, in the envelope's order. Until
// begin, advance checks nothing.
func (fc *frameCheck) begin() { *fc = frameCheck{regions: fc.regions[:0]} }

func (fc *frameCheck) addRegion(n int64) {
	if len(fc.regions) == 0 {
		fc.regionEnd = n
	}
	fc.regions = append(fc.regions, n)
}

// advance checks the frames that have arrived whole: have is the trailing
// bytes read so far.
func (fc *frameCheck) advance(have []byte) {
	for !fc.stopped {
		// Move to the region holding pos; a region's cut-short last
		// frame is skipped, as the decoder skips it.
		for fc.pos >= fc.regionEnd {
			if fc.ri++; fc.ri >= len(fc.regions) {
				fc.stopped = true
				return
			}
			fc.pos = fc.regionEnd
			fc.regionEnd += fc.regions[fc.ri]
		}
		if fc.regionEnd-fc.pos < schema.FrameHeaderSize {
			fc.pos = fc.regionEnd // a cut-short frame's piece of a header
			continue
		}
		if int64(len(have)) < fc.pos+schema.FrameHeaderSize {
			return
		}
		n, err := schema.PeekFrameLength(have[fc.pos:], schema.MaxFrameBytes)
		if err != nil {
			fc.stopped = true
			return
		}
		end := fc.pos + int64(n)
		if end > fc.regionEnd {
			fc.pos = fc.regionEnd
			continue
		}
		if end > int64(len(have)) {
			return
		}
		if _, err := schema.CheckFrame(have[fc.pos:end]); err != nil {
			fc.stopped = true
			return
		}
		fc.pos, fc.checkedEnd = end, end
	}
}
