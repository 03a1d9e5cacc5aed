package schema

import (
	"errors"
	"testing"
)

// TestFrameReservedByteChecked: byte 7 is outside the CRC, so a flip there
// must be caught by the header check itself.
func TestFrameReservedByteChecked(t *testing.T) {
	var h FrameHeader
	h.RecordCount = 1
	b := AppendFrameHeader(nil, &h, 8)
	b = append(b, make([]byte, 8)...)
	SealFrame(b)
	if _, err := CheckFrame(b); err != nil {
		t.Fatalf("valid frame refused: %v", err)
	}
	b[7] = 1
	if _, err := CheckFrame(b); !errors.Is(err, ErrFrameVersion) {
		t.Fatalf("reserved byte set: %v, want ErrFrameVersion", err)
	}
}
