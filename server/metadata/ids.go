package metadata

import (
	"encoding/base64"
	"encoding/hex"
)

// TopicID is a topic's 16 random bytes. The caller draws them (the
// controller leader, from crypto/rand) and passes them in, so that applying
// a command stays deterministic. The zero id is reserved for "none".
type TopicID [topicIDLen]byte

// IsZero reports whether the id is the reserved zero id.
func (id TopicID) IsZero() bool { return id == TopicID{} }

// String prints the id as Kafka does: unpadded URL-safe base64.
func (id TopicID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// IncarnationID is 16 random bytes a broker process draws at start-up; a
// registration under a new incarnation means the broker restarted.
type IncarnationID [incarnationIDLen]byte

// String prints the id as hex.
func (id IncarnationID) String() string { return hex.EncodeToString(id[:]) }
