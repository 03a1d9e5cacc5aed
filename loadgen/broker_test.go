package main

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/strata-db/strata/client/brokertest"
)

// The strata binary is built once for every test that needs a broker.
var (
	brokerBinOnce sync.Once
	brokerBin     string
	brokerBinErr  error
	brokerBinDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if brokerBinDir != "" {
		os.RemoveAll(brokerBinDir)
	}
	os.Exit(code)
}

// startBroker runs a real broker process on a free loopback port with a
// data folder of its own; it is stopped when the test ends.
func startBroker(t *testing.T) *brokertest.Broker {
	t.Helper()
	brokerBinOnce.Do(func() {
		brokerBinDir, brokerBinErr = brokertest.TempDir()
		if brokerBinErr == nil {
			brokerBin, brokerBinErr = brokertest.Build(brokerBinDir)
		}
	})
	if brokerBinErr != nil {
		t.Fatalf("build strata: %v", brokerBinErr)
	}
	return brokertest.Start(t, brokerBin, t.TempDir(), "127.0.0.1:0")
}

// clientArgs are the flags that point a workload at b and a topic.
func clientArgs(b *brokertest.Broker, topic string, more ...any) []string {
	args := []string{"--brokers", b.Addr, "--topic", topic, "--json"}
	for _, m := range more {
		args = append(args, fmt.Sprint(m))
	}
	return args
}
