package client

import "time"

// Defaults of Config.
const (
	// DefaultBroker is where a single local broker listens by default
	// (`strata serve` with no flags).
	DefaultBroker = "127.0.0.1:9292"

	dialTimeoutMsDefault     = 10_000
	inflightPerConnDefault   = 5
	metadataMaxAgeMsDefault  = 5 * 60 * 1000
	retryBackoffMsDefault    = 100
	retryBackoffMaxMsDefault = 1000
	// retryTimeoutMsDefault is Kafka's default.api.timeout.ms: long enough
	// to ride through a broker restart or a leader election.
	retryTimeoutMsDefault = 60_000
	clientIDDefault       = "strata-go"
	// responseTimeoutMsDefault is above the broker's longest fetch
	// long-poll (30 s), so a waiting fetch is never taken for a lost one.
	responseTimeoutMsDefault = 45_000

	// inflightPerConnMax matches the broker's pipelining cap per
	// connection; more would only wait in its socket buffer.
	inflightPerConnMax = 1024
)

// Config is what every Client needs: where the brokers are and how to
// talk to them. The zero value of each field takes its default.
type Config struct {
	// Brokers are the seed addresses (HOST:PORT). The first that answers
	// gives the cluster's metadata; after that, the client connects to the
	// brokers the metadata names. Default: DefaultBroker.
	Brokers []string
	// ClientID names this client in the broker's logs.
	ClientID string
	// DialTimeoutMs bounds one connection attempt.
	DialTimeoutMs int
	// InflightPerConn bounds the requests awaiting answers on one
	// connection: the pipelining depth. Default 5, at most 1024.
	InflightPerConn int
	// ResponseTimeoutMs bounds the wait for an answer while requests are
	// pending on a connection; past it the connection is closed and its
	// requests fail (and are retried where that is safe). Keep it above
	// the consumers' MaxWaitMs.
	ResponseTimeoutMs int
	// MetadataMaxAgeMs is how long cached metadata is trusted before it
	// is fetched again even without an error that calls for it.
	MetadataMaxAgeMs int
	// RetryBackoffMs is the first wait before a retry; each further try of
	// the same work doubles it up to RetryBackoffMaxMs. A producer's batch
	// backing off from a leader that failed asks for the metadata every
	// RetryBackoffMs (at most 100 ms) meanwhile and goes at once to a new
	// leader when the metadata names one.
	RetryBackoffMs    int
	RetryBackoffMaxMs int
	// RetryTimeoutMs bounds the retries of one metadata lookup or one
	// ListOffsets call (lost or refused connections, NOT_LEADER,
	// LEADER_NOT_AVAILABLE and the other retriable codes): past it the
	// call fails with ErrRetryTimeout and the last error. The caller's
	// context bounds them too. Default 60 000. A producer's batches are
	// bounded by ProducerConfig.DeliveryTimeoutMs instead.
	RetryTimeoutMs int
}

func (c Config) withDefaults() Config {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{DefaultBroker}
	}
	if c.ClientID == "" {
		c.ClientID = clientIDDefault
	}
	if c.DialTimeoutMs <= 0 {
		c.DialTimeoutMs = dialTimeoutMsDefault
	}
	if c.InflightPerConn <= 0 {
		c.InflightPerConn = inflightPerConnDefault
	}
	c.InflightPerConn = min(c.InflightPerConn, inflightPerConnMax)
	if c.ResponseTimeoutMs <= 0 {
		c.ResponseTimeoutMs = responseTimeoutMsDefault
	}
	if c.MetadataMaxAgeMs <= 0 {
		c.MetadataMaxAgeMs = metadataMaxAgeMsDefault
	}
	if c.RetryBackoffMs <= 0 {
		c.RetryBackoffMs = retryBackoffMsDefault
	}
	if c.RetryBackoffMaxMs < c.RetryBackoffMs {
		c.RetryBackoffMaxMs = max(retryBackoffMaxMsDefault, c.RetryBackoffMs)
	}
	if c.RetryTimeoutMs <= 0 {
		c.RetryTimeoutMs = retryTimeoutMsDefault
	}
	return c
}

// backoff is the wait before try number attempt (1 for the first retry).
func (c *Config) backoff(attempt int) time.Duration {
	d := time.Duration(c.RetryBackoffMs) * time.Millisecond
	limit := time.Duration(c.RetryBackoffMaxMs) * time.Millisecond
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
