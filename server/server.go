package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures a Server.
type Config struct {
	// Listen is the address every shard listens on (SO_REUSEPORT); port 0
	// picks a free port, shared by all shards.
	Listen string
	// Cores is the number of shards; 0 means one per CPU this process may
	// use.
	Cores int
	// Pin binds shard i to the i-th allowed CPU. Tests leave it off so that
	// several servers can share a small machine.
	Pin bool
	// Handler answers requests.
	Handler Handler
	// ConnIdleMax closes a connection silent this long with nothing in
	// flight (0: connIdleMaxMsDefault, Kafka's connections.max.idle.ms).
	ConnIdleMax time.Duration
	// DrainWaitMax bounds how long a stop waits for connections to be
	// answered before it closes the ones left (0: drainWaitMaxMsDefault):
	// a client that stops reading must not hold a broker up for ever.
	DrainWaitMax time.Duration
	// RequestBudgetBytes bounds the memory all shards together hold for
	// large requests being received or served (Kafka's
	// queued.max.request.bytes); each shard gets an equal share, at least
	// requestBudgetShareBytesMin (0: requestBudgetBytesDefault).
	RequestBudgetBytes int64
	Logger             *slog.Logger
}

// maxShards bounds the shard count.
const maxShards = 256

// Server is a set of shards serving one address.
type Server struct {
	cfg    Config
	addr   netip.AddrPort
	shards []*Shard
}

// Start sets up every shard and returns once all are serving.
func Start(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("server: no handler")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	addr, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen address %q: %w", cfg.Listen, err)
	}
	cpus, err := allowedCPUs()
	if err != nil {
		return nil, fmt.Errorf("server: cpu affinity: %w", err)
	}
	n := cfg.Cores
	if n <= 0 {
		n = len(cpus)
	}
	if n > maxShards {
		return nil, fmt.Errorf("server: %d cores above the limit of %d", n, maxShards)
	}
	if err := checkRequestBudget(cfg.RequestBudgetBytes, n); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if addr.Port() != 0 {
		if err := waitPortFree(addr); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	s := &Server{cfg: cfg}
	for i := range n {
		fd, err := listenReusePort(addr)
		if err != nil {
			s.closeUnstarted()
			return nil, fmt.Errorf("server: shard %d: %w", i, err)
		}
		if addr.Port() == 0 {
			port, err := boundPort(fd)
			if err != nil {
				unix.Close(fd)
				s.closeUnstarted()
				return nil, err
			}
			addr = netip.AddrPortFrom(addr.Addr(), port)
		}
		cpu := -1
		if cfg.Pin {
			cpu = cpus[i%len(cpus)]
		}
		sh, err := newShard(shardConfig{id: i, cpu: cpu, listenFD: fd, handler: cfg.Handler, log: cfg.Logger, connIdleMax: cfg.ConnIdleMax, drainWaitMax: cfg.DrainWaitMax,
			requestBudgetBytes: shardBudgetBytes(cfg.RequestBudgetBytes, n)})
		if err != nil {
			unix.Close(fd)
			s.closeUnstarted()
			return nil, err
		}
		s.shards = append(s.shards, sh)
	}
	// Every shard knows its peers before any of them runs, and none enters
	// its loop before all are set up.
	begin := make(chan struct{})
	for _, sh := range s.shards {
		sh.peers = s.shards
		sh.begin = begin
	}
	for i, sh := range s.shards {
		started := make(chan error, 1)
		go sh.run(started)
		if err := <-started; err != nil {
			<-sh.done
			close(begin)
			for _, running := range s.shards[:i] {
				running.stop()
				<-running.done
			}
			for _, rest := range s.shards[i+1:] {
				rest.closeUnstarted()
			}
			return nil, err
		}
	}
	close(begin)
	s.addr = addr
	return s, nil
}

// Addr is the address the shards listen on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Shards are the server's shards, by index.
func (s *Server) Shards() []*Shard { return s.shards }

// Stop drains every shard (no new connections or requests, in-flight
// requests answered) and waits for them to finish.
func (s *Server) Stop() error {
	for _, sh := range s.shards {
		sh.stop()
	}
	var errs []error
	for _, sh := range s.shards {
		<-sh.done
		if sh.err != nil {
			errs = append(errs, sh.err)
		}
	}
	return errors.Join(errs...)
}

// closeUnstarted releases the shards created but never run.
func (s *Server) closeUnstarted() {
	for _, sh := range s.shards {
		sh.closeUnstarted()
	}
	s.shards = nil
}
