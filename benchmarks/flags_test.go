package main

import (
	"slices"
	"strconv"
	"testing"

	"github.com/strata-db/strata/loadgen/cpuset"
)

func TestClientCPUsSplitTheMachine(t *testing.T) {
	allowed, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	n := len(allowed)
	cfg, err := parseFlags([]string{"--client-cpus", "0"})
	if err != nil || cfg.clientCPUs != nil || cfg.serverCPUs != nil {
		t.Errorf("--client-cpus 0: %v %v %v, want no split", cfg.clientCPUs, cfg.serverCPUs, err)
	}
	if _, err := parseFlags([]string{"--client-cpus", strconv.Itoa(n)}); err == nil {
		t.Errorf("--client-cpus %d of %d CPUs left the broker none, and was accepted", n, n)
	}
	if n < 2 {
		return
	}
	cfg, err = parseFlags([]string{"--client-cpus", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.clientCPUs, allowed[n-1:]) || !slices.Equal(cfg.serverCPUs, allowed[:n-1]) || cfg.clientProcs != 1 {
		t.Errorf("--client-cpus 1: client %v server %v procs %d", cfg.clientCPUs, cfg.serverCPUs, cfg.clientProcs)
	}
}
