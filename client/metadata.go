package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/strata-db/strata/schema"
	"github.com/strata-db/strata/schema/fb"
)

// BrokerInfo is one broker of the cluster as the metadata names it.
type BrokerInfo struct {
	NodeID int32
	Host   string
	Port   uint16
	Rack   string
	// Fenced brokers (session lapsed or shutting down) lead nothing; they
	// are listed for operators.
	Fenced bool
}

// Addr is the broker's HOST:PORT.
func (b BrokerInfo) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) }

// PartitionInfo describes one partition: its leader and leader epoch, its
// replicas, its in-sync replicas, its eligible leader replicas, and which
// replicas sit on brokers that are not live.
type PartitionInfo struct {
	Partition   int32
	Leader      int32 // -1: no leader at the moment
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	// ELR are replicas out of the ISR that still hold everything
	// committed (eligible for a clean election); LastKnownELR, while the
	// partition has no leader, those only an unclean election may pick.
	ELR          []int32
	LastKnownELR []int32
	// OfflineReplicas are the replicas whose brokers are fenced, shutting
	// down or unknown to the controller.
	OfflineReplicas []int32
	Err             error // the partition's error code, nil for none
}

// UnderReplicated reports whether the ISR is smaller than the replica set.
func (p PartitionInfo) UnderReplicated() bool { return len(p.ISR) < len(p.Replicas) }

// Unavailable reports whether the partition has no leader.
func (p PartitionInfo) Unavailable() bool { return p.Leader < 0 }

// TopicInfo describes one topic and its partitions, in partition order.
type TopicInfo struct {
	Name       string
	Partitions []PartitionInfo
	Err        error // e.g. UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist
}

// ClusterInfo is what the metadata says about the cluster.
type ClusterInfo struct {
	ClusterID    string
	ControllerID int32
	Brokers      []BrokerInfo
}

// metadataCache is the latest metadata: brokers by id and topics by name,
// each topic with the time it was fetched. Guarded by Client.mu.
type metadataCache struct {
	brokers map[int32]BrokerInfo
	topics  map[string]cachedTopic
}

type cachedTopic struct {
	info    TopicInfo
	fetched time.Time
	stale   bool // an error asked for a refresh
}

func (m *metadataCache) init() {
	m.brokers = map[int32]BrokerInfo{}
	m.topics = map[string]cachedTopic{}
}

func (m *metadataCache) brokerAddrs() []string {
	addrs := make([]string, 0, len(m.brokers))
	for _, b := range m.brokers {
		addrs = append(addrs, b.Addr())
	}
	slices.Sort(addrs)
	return addrs
}

// metadataResult is one Metadata answer, unpacked.
type metadataResult struct {
	cluster ClusterInfo
	topics  []TopicInfo
}

// fetchMetadata asks a broker for the metadata of topics (nil: every
// topic) and stores what it learns in the cache. A lost connection, a
// refused one, or a retriable code for the whole answer (a broker that has
// not joined the cluster yet answers LEADER_NOT_AVAILABLE) is retried with
// backoff inside RetryTimeoutMs (see retryCall).
func (c *Client) fetchMetadata(ctx context.Context, topics []string) (*metadataResult, error) {
	var res *metadataResult
	err := c.retryCall(ctx, "metadata", func(ctx context.Context) error {
		var err error
		res, err = c.fetchMetadataOnce(ctx, topics)
		return err
	})
	return res, err
}

// fetchMetadataOnce is one Metadata round trip, without retries: the
// producer's sender and the consumer's fetch loop back off per partition
// themselves and must not wait on one lookup.
func (c *Client) fetchMetadataOnce(ctx context.Context, topics []string) (*metadataResult, error) {
	var res metadataResult
	build := func(b *flatbuffers.Builder) (fb.Message, flatbuffers.UOffsetT) {
		req := &fb.MetadataRequestT{Topics: topics}
		if topics != nil && len(topics) == 0 {
			req.Topics = []string{}
		}
		return fb.MessageMetadataRequest, req.Pack(b)
	}
	err := c.request(ctx, fb.ApiKeyMetadata, build, func(env *schema.Envelope) error {
		r, err := env.MetadataResponse()
		if err != nil {
			return err
		}
		if r.ErrorCode() != fb.ErrorCodeNone {
			return &schema.CodeError{Code: r.ErrorCode()}
		}
		t := r.UnPack()
		res.cluster = ClusterInfo{ClusterID: t.ClusterId, ControllerID: t.ControllerId}
		for _, b := range t.Brokers {
			res.cluster.Brokers = append(res.cluster.Brokers, BrokerInfo{NodeID: b.NodeId, Host: b.Host, Port: b.Port, Rack: b.Rack, Fenced: b.Fenced})
		}
		for _, tm := range t.Topics {
			ti := TopicInfo{Name: tm.Name, Err: topicErr(tm.Name, tm.ErrorCode)}
			for _, p := range tm.Partitions {
				ti.Partitions = append(ti.Partitions, PartitionInfo{Partition: p.Partition, Leader: p.LeaderId,
					LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.Isr, ELR: p.Elr, LastKnownELR: p.LastKnownElr,
					OfflineReplicas: p.OfflineReplicas, Err: codeErr(p.ErrorCode)})
			}
			slices.SortFunc(ti.Partitions, func(a, b PartitionInfo) int { return int(a.Partition) - int(b.Partition) })
			res.topics = append(res.topics, ti)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	c.mu.Lock()
	for _, b := range res.cluster.Brokers {
		c.meta.brokers[b.NodeID] = b
	}
	for _, t := range res.topics {
		if t.Err != nil {
			delete(c.meta.topics, t.Name)
			continue
		}
		c.meta.topics[t.Name] = cachedTopic{info: t, fetched: now}
	}
	c.mu.Unlock()
	return &res, nil
}

// topic returns the cached metadata of a topic, fetching it when absent,
// stale or older than MetadataMaxAgeMs. A topic the broker does not know
// gives UNKNOWN_TOPIC_OR_PARTITION.
func (c *Client) topic(ctx context.Context, name string) (TopicInfo, error) {
	c.mu.Lock()
	ct, ok := c.meta.topics[name]
	fresh := ok && !ct.stale && time.Since(ct.fetched) < time.Duration(c.cfg.MetadataMaxAgeMs)*time.Millisecond
	c.mu.Unlock()
	if fresh {
		return ct.info, nil
	}
	res, err := c.fetchMetadata(ctx, []string{name})
	if err != nil {
		return TopicInfo{}, err
	}
	for _, t := range res.topics {
		if t.Name == name {
			return t, t.Err
		}
	}
	return TopicInfo{}, topicErr(name, fb.ErrorCodeUnknownTopicOrPartition)
}

// invalidate marks a topic's metadata for refresh (after NOT_LEADER and
// the like).
func (c *Client) invalidate(topic string) {
	c.mu.Lock()
	if ct, ok := c.meta.topics[topic]; ok {
		ct.stale = true
		c.meta.topics[topic] = ct
	}
	c.mu.Unlock()
}

// leaderAddr is the address of a partition's leader from the cache; ok is
// false when the cache does not know it (or knows it is stale).
func (c *Client) leaderAddr(topic string, partition int32) (addr string, ok bool) {
	addr, _, ok = c.leaderOf(topic, partition)
	return addr, ok
}

// leaderOf is leaderAddr with the leader epoch the metadata gave, which
// fetches and offset lookups carry so that a broker can fence a client
// whose metadata is behind (FENCED_LEADER_EPOCH) or ahead of its own
// (UNKNOWN_LEADER_EPOCH).
func (c *Client) leaderOf(topic string, partition int32) (addr string, epoch int32, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct, found := c.meta.topics[topic]
	if !found || ct.stale || partition < 0 || int(partition) >= len(ct.info.Partitions) {
		return "", -1, false
	}
	p := ct.info.Partitions[partition]
	if p.Partition != partition || p.Leader < 0 {
		return "", -1, false
	}
	b, found := c.meta.brokers[p.Leader]
	if !found {
		return "", -1, false
	}
	return b.Addr(), p.LeaderEpoch, true
}

// leaderFor returns a partition's leader address and leader epoch,
// refreshing the metadata once (no retries: the caller retries) if the
// cache does not know them. A partition the topic does not have is
// ErrNoSuchPartition, which no retry mends; no leader at the moment is
// LEADER_NOT_AVAILABLE, which a retry may.
func (c *Client) leaderFor(ctx context.Context, topic string, partition int32) (string, int32, error) {
	if addr, epoch, ok := c.leaderOf(topic, partition); ok {
		return addr, epoch, nil
	}
	res, err := c.fetchMetadataOnce(ctx, []string{topic})
	if err != nil {
		return "", -1, err
	}
	if addr, epoch, ok := c.leaderOf(topic, partition); ok {
		return addr, epoch, nil
	}
	for _, t := range res.topics {
		if t.Name != topic {
			continue
		}
		if t.Err != nil {
			return "", -1, t.Err
		}
		if partition < 0 || int(partition) >= len(t.Partitions) {
			return "", -1, fmt.Errorf("%w: topic %q has no partition %d (it has %d)", ErrNoSuchPartition, topic, partition, len(t.Partitions))
		}
	}
	return "", -1, fmt.Errorf("topic %q partition %d: %w", topic, partition, &schema.CodeError{Code: fb.ErrorCodeLeaderNotAvailable})
}

// topicErr is a metadata answer's error code for a topic as an error that
// names the topic, nil for NONE. The metadata is the controller's, so
// UNKNOWN_TOPIC_OR_PARTITION there means the topic does not exist (a
// partition-level answer of a produce or fetch may only mean this broker
// does not host it).
func topicErr(name string, c fb.ErrorCode) error {
	switch c {
	case fb.ErrorCodeNone:
		return nil
	case fb.ErrorCodeUnknownTopicOrPartition:
		return &schema.CodeError{Code: c, Message: fmt.Sprintf("topic %q does not exist", name)}
	}
	return &schema.CodeError{Code: c, Message: fmt.Sprintf("topic %q: %s", name, schema.ErrorDescription(c))}
}

// codeErr is c as an error, nil for NONE.
func codeErr(c fb.ErrorCode) error {
	if c == fb.ErrorCodeNone {
		return nil
	}
	return &schema.CodeError{Code: c}
}

// retriable reports whether err is worth retrying: a retriable wire code
// (schema.ErrorRetriable: NOT_LEADER, LEADER_NOT_AVAILABLE,
// UNKNOWN_TOPIC_OR_PARTITION from a partition's broker, FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
// REQUEST_TIMED_OUT, STORAGE_ERROR, NOT_CONTROLLER) or a lost or refused
// connection. The end of the caller's context is never retriable, though
// a context deadline passes for a network timeout.
func retriable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *schema.CodeError
	if errors.As(err, &ce) {
		return schema.ErrorRetriable(ce.Code)
	}
	return isConnErr(err)
}

// ErrRetryTimeout ends a metadata lookup or offset lookup whose retries
// ran past Config.RetryTimeoutMs; the last error is wrapped with it.
var ErrRetryTimeout = errors.New("strata client: retry timeout")

// retryCall runs call until it succeeds, fails with an error that is not
// retriable, ctx ends, or the next try would start past RetryTimeoutMs
// from the first. Tries are spaced by the exponential backoff of Config.
// Errors after the first try name the attempts and the last cause.
func (c *Client) retryCall(ctx context.Context, what string, call func(ctx context.Context) error) error {
	start := time.Now()
	limit := time.Duration(c.cfg.RetryTimeoutMs) * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		if err == nil || !retriable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w after %d attempts (last error: %w)", what, ctx.Err(), attempt, err)
		}
		wait := c.cfg.backoff(attempt)
		if time.Since(start)+wait > limit {
			return fmt.Errorf("%s: %w (%v) after %d attempts: %w", what, ErrRetryTimeout, limit, attempt, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s: %w after %d attempts (last error: %w)", what, ctx.Err(), attempt, err)
		}
	}
}

// isUnknownTopic reports whether err says the topic does not exist.
func isUnknownTopic(err error) bool {
	var ce *schema.CodeError
	return errors.As(err, &ce) && ce.Code == fb.ErrorCodeUnknownTopicOrPartition
}

// partitionCount is a topic's partition count for placing records. A
// cached count serves, stale or not (a leader move does not change it),
// until it is older than MetadataMaxAgeMs: then it is fetched again, so
// that a topic grown by CreatePartitions is spread over its new count
// (any refresh before that, for a leader, brings the count too). Without
// one it is fetched, with fetchMetadata's retries. A topic the
// controller's metadata does not know fails at once.
func (c *Client) partitionCount(ctx context.Context, topic string) (int32, error) {
	c.mu.Lock()
	ct, ok := c.meta.topics[topic]
	young := ok && time.Since(ct.fetched) < time.Duration(c.cfg.MetadataMaxAgeMs)*time.Millisecond
	c.mu.Unlock()
	if young && len(ct.info.Partitions) > 0 {
		return int32(len(ct.info.Partitions)), nil
	}
	// A refresh that fails keeps the count known: the send's own retries
	// deal with the broker.
	t, err := c.topic(ctx, topic)
	if err != nil {
		if ok && len(ct.info.Partitions) > 0 && !isUnknownTopic(err) {
			return int32(len(ct.info.Partitions)), nil
		}
		return 0, err
	}
	if len(t.Partitions) == 0 {
		return 0, fmt.Errorf("topic %q has no partitions: %w", topic, &schema.CodeError{Code: fb.ErrorCodeUnknownTopicOrPartition})
	}
	return int32(len(t.Partitions)), nil
}
