package main

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/strata-db/strata/loadgen/cpuset"
)

// suiteCPUs moves the suite between the CPUs its ceilings measure (every
// CPU the process started with) and those its cases run on (--case-cpus,
// with GOMAXPROCS at --procs or the list's length). A broker confined to
// the other CPUs then shares the machine with the client as if each had
// a machine of its own, and neither's threads land on the other's CPUs.
type suiteCPUs struct {
	all, cases []int // cases nil: the cases run on every CPU too
	allProcs   int   // GOMAXPROCS at the start
	caseProcs  int   // GOMAXPROCS during the cases; 0: allProcs
	inCases    bool
}

// start takes the CPUs the process may use and checks that caseCPUs is
// among them; procs is --procs (0: not given).
func (c *suiteCPUs) start(caseCPUs []int, procs int) error {
	all, err := cpuset.Allowed()
	if err != nil {
		return err
	}
	for _, cpu := range caseCPUs {
		if !slices.Contains(all, cpu) {
			return fmt.Errorf("--%s %s: CPU %d is not among this process's CPUs %s",
				flagCaseCPUs, cpuset.Format(caseCPUs), cpu, cpuset.Format(all))
		}
	}
	*c = suiteCPUs{all: all, cases: caseCPUs, allProcs: runtime.GOMAXPROCS(0), caseProcs: procs}
	if procs == 0 && len(caseCPUs) > 0 {
		c.caseProcs = len(caseCPUs)
	}
	return nil
}

// enterCases confines the process to the cases' CPUs.
func (c *suiteCPUs) enterCases() error {
	if c.cases != nil {
		if err := cpuset.Confine(c.cases); err != nil {
			return err
		}
	}
	if c.caseProcs > 0 {
		runtime.GOMAXPROCS(c.caseProcs)
	}
	c.inCases = true
	return nil
}

// leaveCases gives the process every CPU again.
func (c *suiteCPUs) leaveCases() error {
	c.inCases = false
	runtime.GOMAXPROCS(c.allProcs)
	if c.cases != nil {
		return cpuset.Confine(c.all)
	}
	return nil
}

// onAll runs fn on every CPU, leaving and re-entering the cases' CPUs
// when called between cases (a paired round's ceiling).
func (c *suiteCPUs) onAll(fn func() error) error {
	if !c.inCases {
		return fn()
	}
	if err := c.leaveCases(); err != nil {
		return err
	}
	err := fn()
	if enterErr := c.enterCases(); err == nil {
		err = enterErr
	}
	return err
}
