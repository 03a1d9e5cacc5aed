package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/metadata"
)

// localMeta is the metadata of a single-node broker: the same state machine
// and records the controller quorum runs (server/metadata), applied by one
// goroutine and persisted in a local metadata log, one frame per command.
// It is the embedded default until the Raft quorum takes its place; the
// broker sees only Image and the command methods.
//
// It runs on its own goroutine, off the shards: metadata changes are rare
// and may block on the disk.
type localMeta struct {
	log   *segment.Log
	ctrl  *metadata.Controller
	state *metadata.State
	reqs  chan metaCommand
	done  chan struct{}
	// publish hands a new image to the broker and calls done once every
	// shard has taken it.
	publish func(im *metadata.Image, done func())
}

// metaCommand is one command for the metadata goroutine; reply receives
// its result.
type metaCommand struct {
	run   func(c *metadata.Controller, nowMs int64) ([]metadata.Record, error)
	reply func(err error)
}

const (
	metadataLogDir = "__cluster_metadata-0"
	// metadataSegmentBytes is small: the metadata log holds little.
	metadataSegmentBytes = 16 << 20
	// metadataCommandQueue bounds the commands waiting for the goroutine.
	metadataCommandQueue = 1024
)

// openLocalMeta replays the metadata log under dataDir and registers this
// broker (a new incarnation every start, as Kafka brokers do).
func openLocalMeta(dataDir string, nodeID int32, listener metadata.Listener) (*localMeta, error) {
	dir := filepath.Join(dataDir, metadataLogDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log, err := segment.Open(dir, segment.Config{SegmentBytes: metadataSegmentBytes, IndexBytes: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("metadata log: %w", err)
	}
	state := metadata.NewState()
	if err := replayMetadata(log, state); err != nil {
		log.Close()
		return nil, err
	}
	nowMs := time.Now().UnixMilli()
	// Nobody has heartbeated since this process started: sessions from the
	// previous run count as lapsed.
	ctrl := metadata.NewController(state, metadata.Config{}, nowMs-metadata.DefaultSessionTimeoutMs-1)
	m := &localMeta{log: log, ctrl: ctrl, state: state, reqs: make(chan metaCommand, metadataCommandQueue), done: make(chan struct{})}
	var inc metadata.IncarnationID
	rand.Read(inc[:])
	recs, err := ctrl.RegisterBroker(metadata.RegisterBrokerRequest{ID: nodeID, Incarnation: inc, Listeners: []metadata.Listener{listener}}, nowMs)
	if err == nil {
		err = m.persist(recs)
	}
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("register broker %d: %w", nodeID, err)
	}
	b, _ := state.Image().Broker(nodeID)
	recs, err = ctrl.BrokerHeartbeat(metadata.HeartbeatRequest{ID: nodeID, Epoch: b.Epoch, AppliedOffset: state.Offset()}, nowMs)
	if err == nil {
		err = m.persist(recs)
	}
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("unfence broker %d: %w", nodeID, err)
	}
	return m, nil
}

// replayMetadata applies every batch in the log to state.
func replayMetadata(log *segment.Log, state *metadata.State) error {
	const readBytes = 1 << 20
	var buf []byte
	for off := log.LogStart(); off < log.End(); {
		spans, err := log.Read(off, readBytes, log.End())
		if err != nil {
			return fmt.Errorf("metadata log read at %d: %w", off, err)
		}
		if len(spans) == 0 {
			return fmt.Errorf("metadata log: nothing readable at %d of %d", off, log.End())
		}
		buf, err = log.ReadSpans(buf[:0], spans)
		if err != nil {
			return err
		}
		for rest := buf; len(rest) > 0; {
			h, err := schema.CheckFrame(rest)
			if err != nil {
				return fmt.Errorf("metadata log frame: %w", err)
			}
			recs, err := metadata.DecodeBatch(rest[schema.FrameHeaderSize:h.Length])
			if err != nil {
				return fmt.Errorf("metadata log batch at %d: %w", h.BaseOffset, err)
			}
			if err := state.ApplyAll(recs); err != nil {
				return fmt.Errorf("metadata log batch at %d: %w", h.BaseOffset, err)
			}
			rest = rest[h.Length:]
			off = h.NextOffset()
		}
	}
	return nil
}

// persist appends one command's records as one frame and syncs it.
func (m *localMeta) persist(recs []metadata.Record) error {
	if len(recs) == 0 {
		return nil
	}
	body := metadata.AppendBatch(nil, recs)
	nowMs := time.Now().UnixMilli()
	h := schema.FrameHeader{RecordCount: uint32(len(recs)), FirstTimestampMs: nowMs, MaxTimestampMs: nowMs}
	frame := schema.AppendFrameHeader(nil, &h, len(body))
	frame = append(frame, body...)
	schema.SealFrame(frame)
	if _, err := m.log.Append(frame); err != nil {
		return err
	}
	return m.log.Flush()
}

// run applies commands until close; it publishes each new image and waits
// for the shards to take it before answering, so a client that created a
// topic finds its partitions served.
func (m *localMeta) run() {
	defer close(m.done)
	for cmd := range m.reqs {
		recs, err := cmd.run(m.ctrl, time.Now().UnixMilli())
		if err == nil {
			err = m.persist(recs)
		}
		if err != nil || len(recs) == 0 {
			cmd.reply(err)
			continue
		}
		taken := make(chan struct{})
		m.publish(m.state.Image(), func() { close(taken) })
		<-taken
		cmd.reply(nil)
	}
}

// submit queues a command; reply runs on the metadata goroutine.
func (m *localMeta) submit(cmd metaCommand) error {
	select {
	case m.reqs <- cmd:
		return nil
	default:
		return errMetadataBusy
	}
}

var errMetadataBusy = errors.New("server: metadata command queue full")

// createTopic draws the topic's id and placement seed and creates it.
func createTopicCommand(name string, configs map[string]string) func(*metadata.Controller, int64) ([]metadata.Record, error) {
	return func(c *metadata.Controller, _ int64) ([]metadata.Record, error) {
		var id metadata.TopicID
		rand.Read(id[:])
		var seed [4]byte
		rand.Read(seed[:])
		return c.CreateTopic(metadata.CreateTopicRequest{Name: name, ID: id, Configs: configs,
			StartIndex: uint32(seed[0]) | uint32(seed[1])<<8 | uint32(seed[2])<<16 | uint32(seed[3])<<24})
	}
}

func deleteTopicCommand(name string) func(*metadata.Controller, int64) ([]metadata.Record, error) {
	return func(c *metadata.Controller, _ int64) ([]metadata.Record, error) { return c.DeleteTopic(name) }
}

func (m *localMeta) close() error {
	close(m.reqs)
	<-m.done
	return m.log.Close()
}
