package projection

import (
	"encoding/binary"
	"encoding/hex"
)

// Message and claim ids derive from the log position of the event that
// created them, so they need no state and every replay yields the same ids:
//
//	byte 0      log (pool) number, 0 for the default log
//	bytes 1-2   partition
//	bytes 3-8   offset (48 bits)
//	bytes 9-11  index within the event (message i of a post; 0 for claims)
//
// rendered as 24 lowercase hex digits, the shape of Zaqar's MongoDB ids.
// Within one partition ids sort in log order.
const idLen = 24

// PositionID returns the id for item index of the event at (p, off).
func PositionID(p int32, off int64, index int) string {
	var b [12]byte
	binary.BigEndian.PutUint16(b[1:], uint16(p))
	var o [8]byte
	binary.BigEndian.PutUint64(o[:], uint64(off))
	copy(b[3:9], o[2:])
	b[9], b[10], b[11] = byte(index>>16), byte(index>>8), byte(index)
	return hex.EncodeToString(b[:])
}

// ParseID returns the log position an id was derived from.
func ParseID(id string) (p int32, off int64, index int, ok bool) {
	if !ValidID(id) {
		return 0, 0, 0, false
	}
	b, err := hex.DecodeString(id)
	if err != nil {
		return 0, 0, 0, false
	}
	var o [8]byte
	copy(o[2:], b[3:9])
	return int32(binary.BigEndian.Uint16(b[1:])), int64(binary.BigEndian.Uint64(o[:])), int(b[9])<<16 | int(b[10])<<8 | int(b[11]), true
}

// ValidID reports whether s has the shape of a Herald id. Anything else is
// simply "not found" to the API.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
