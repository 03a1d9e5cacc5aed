package segment

import (
	"bytes"
	"testing"
)

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(checkpoint{logStart: 5, recoveryPoint: 9}.AppendTo(nil))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		if again := c.AppendTo(nil); !bytes.Equal(again, b) {
			t.Fatalf("checkpoint %x decodes to %+v and encodes to %x", b, c, again)
		}
	})
}

func FuzzIndexScan(f *testing.F) {
	f.Add(make([]byte, 48), int64(100), uint32(3), int64(7))
	f.Fuzz(func(t *testing.T, b []byte, size int64, rel uint32, ts int64) {
		if n, err := scanOffsetIndex(b, size, relOffsetMax); err == nil {
			r, p := lookupOffset(b, n, rel)
			if r > rel || (n > 0 && int64(p) >= size) {
				t.Fatalf("lookup %d gave entry (%d, %d)", rel, r, p)
			}
		}
		if n, err := scanTimeIndex(b, relOffsetMax); err == nil {
			lookupTime(b, n, ts)
		}
	})
}

// FuzzRecoverSegment opens a partition whose only data file holds arbitrary
// bytes (and, optionally, valid frames before them): recovery must not
// panic, and everything it keeps must read back as whole valid frames.
func FuzzRecoverSegment(f *testing.F) {
	valid := testFrame(2, 30, 7, 1)
	f.Add(append(append([]byte(nil), valid...), 0xff, 0, 3), true)
	f.Add([]byte{64, 0, 0, 0, 0x54, 0x53, 1}, false)
	f.Fuzz(func(t *testing.T, tail []byte, withFrames bool) {
		fs := NewMemFS()
		cfg := memConfig(fs)
		fs.MkdirAll("/f")
		var data []byte
		if withFrames {
			for i := 0; i < 3; i++ {
				fr := testFrame(1, 20+i, int64(i), uint64(i))
				fr[16] = byte(i)
				data = append(data, fr...)
			}
		}
		data = append(data, tail...)
		w, _ := fs.Create(logPath("/f", 0))
		w.WriteAt(data, 0)
		w.Close()
		l, err := Open("/f", cfg)
		if err != nil {
			return
		}
		defer l.Close()
		if withFrames && l.End() < 3 {
			t.Fatalf("valid prefix lost: end %d", l.End())
		}
		readAll(t, l, 0)
	})
}
