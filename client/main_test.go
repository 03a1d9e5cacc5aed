package client

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/strata-db/strata/client/brokertest"
)

// strataBin is the broker binary built once for the package's tests.
var strataBin string

func TestMain(m *testing.M) {
	dir, err := brokertest.TempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin, err = brokertest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testTimeout bounds each test's broker conversations so a hang fails
// the test instead of the whole run.
const testTimeout = 60 * time.Second

// responseTimeoutMsTest is the clients' answer timeout in tests: above
// the consumers' 100 ms long-polls, short enough that a request the broker
// drops costs seconds rather than the default 45.
const responseTimeoutMsTest = 3000

// startBroker runs a broker for the test and returns it with a client
// connected to it.
func startBroker(t *testing.T) (*brokertest.Broker, *Client, context.Context) {
	t.Helper()
	b := brokertest.Start(t, strataBin, t.TempDir(), "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	cl, err := Dial(ctx, Config{Brokers: []string{b.Addr}, RetryBackoffMs: 20, RetryBackoffMaxMs: 200,
		ResponseTimeoutMs: responseTimeoutMsTest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return b, cl, ctx
}

// startBrokerAddr runs a broker for a test or benchmark and returns its
// address.
func startBrokerAddr(tb testing.TB) string {
	tb.Helper()
	return brokertest.Start(tb, strataBin, tb.TempDir(), "127.0.0.1:0").Addr
}

// createTopic makes a topic or fails the test.
func createTopic(t *testing.T, ctx context.Context, cl *Client, name string, partitions int32) {
	t.Helper()
	if err := NewAdmin(cl).CreateTopics(ctx, TopicSpec{Name: name, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// consumeN reads n records from every partition of topic, from the start.
func consumeN(t *testing.T, ctx context.Context, cl *Client, topic string, n int) []Record {
	t.Helper()
	c := NewConsumer(cl, ConsumerConfig{Reset: ResetEarliest, MaxWaitMs: 100})
	defer c.Close()
	if err := c.Assign(topic); err != nil {
		t.Fatal(err)
	}
	var out []Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}
