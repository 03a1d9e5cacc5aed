package controller

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/strata-db/strata/segment"
	"github.com/strata-db/strata/server/controller/transport"

	pb "go.etcd.io/raft/v3/raftpb"
)

// simNet is an in-process network between voters. Time is the harness's
// step counter: a message sent now is delivered after 0..maxDelay steps,
// so messages reorder; it may also be dropped or duplicated, and links can
// be cut in either direction.
type simNet struct {
	mu       sync.Mutex
	rng      *rand.Rand
	now      int64
	handlers map[uint64]transport.Handler
	queue    []simMsg
	cut      map[[2]uint64]bool
	dropPct  int
	dupPct   int
	maxDelay int
}

type simMsg struct {
	at   int64
	from uint64
	m    *pb.Message
}

func newSimNet(seed uint64) *simNet {
	return &simNet{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		handlers: make(map[uint64]transport.Handler),
		cut:      make(map[[2]uint64]bool),
	}
}

func (s *simNet) setFaults(dropPct, dupPct, maxDelay int) {
	s.mu.Lock()
	s.dropPct, s.dupPct, s.maxDelay = dropPct, dupPct, maxDelay
	s.mu.Unlock()
}

// isolate cuts (or heals) every link to and from id.
func (s *simNet) isolate(id uint64, ids []uint64, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range ids {
		if o != id {
			s.cut[[2]uint64{id, o}], s.cut[[2]uint64{o, id}] = on, on
		}
	}
}

func (s *simNet) heal() {
	s.mu.Lock()
	clear(s.cut)
	s.mu.Unlock()
}

func (s *simNet) endpoint(id uint64) *simEndpoint { return &simEndpoint{net: s, id: id} }

// step advances time by one and delivers what is due.
func (s *simNet) step() {
	s.mu.Lock()
	s.now++
	var due []simMsg
	keep := s.queue[:0]
	for _, sm := range s.queue {
		if sm.at <= s.now {
			due = append(due, sm)
		} else {
			keep = append(keep, sm)
		}
	}
	s.queue = keep
	type delivery struct {
		to, from transport.Handler
		m        *pb.Message
		ok       bool
	}
	var out []delivery
	for _, sm := range due {
		to := s.handlers[sm.m.GetTo()]
		ok := to != nil && !s.cut[[2]uint64{sm.from, sm.m.GetTo()}]
		out = append(out, delivery{to: to, from: s.handlers[sm.from], m: sm.m, ok: ok})
	}
	s.mu.Unlock()
	for _, d := range out {
		if d.ok {
			d.to.Deliver(d.m)
		}
		if d.m.GetType() == pb.MsgSnap && d.from != nil {
			d.from.ReportSnapshot(d.m.GetTo(), d.ok)
		}
	}
}

func (s *simNet) send(from uint64, msgs []*pb.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers[from] == nil {
		return // the sender is down: a crashed node sends nothing
	}
	for _, m := range msgs {
		copies := 1
		if s.rng.IntN(100) < s.dropPct {
			copies = 0
		} else if s.rng.IntN(100) < s.dupPct {
			copies = 2
		}
		if copies == 0 && m.GetType() == pb.MsgSnap {
			h := s.handlers[from]
			to := m.GetTo()
			defer h.ReportSnapshot(to, false)
		}
		for range copies {
			s.queue = append(s.queue, simMsg{at: s.now + int64(s.rng.IntN(s.maxDelay+1)), from: from, m: m})
		}
	}
}

// simEndpoint is one voter's Transport on a simNet.
type simEndpoint struct {
	net *simNet
	id  uint64
}

func (e *simEndpoint) Start(h transport.Handler) error {
	e.net.mu.Lock()
	e.net.handlers[e.id] = h
	e.net.mu.Unlock()
	return nil
}

func (e *simEndpoint) Send(msgs []*pb.Message) { e.net.send(e.id, msgs) }

func (e *simEndpoint) Close() error {
	e.net.down(e.id)
	return nil
}

func (s *simNet) down(id uint64) {
	s.mu.Lock()
	delete(s.handlers, id)
	s.mu.Unlock()
}

// freezableFS fails every operation once frozen, so that a node being
// crashed can neither write nor create anything after the moment of the
// crash (its in-flight writes stay unsynced and MemFS.Crash drops them).
type freezableFS struct {
	fs     segment.FS
	frozen atomic.Bool
}

var errFrozen = &frozenError{}

type frozenError struct{}

func (*frozenError) Error() string { return "test: filesystem crashed" }

func (f *freezableFS) check() error {
	if f.frozen.Load() {
		return errFrozen
	}
	return nil
}

func (f *freezableFS) Create(name string) (segment.File, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	file, err := f.fs.Create(name)
	if err != nil {
		return nil, err
	}
	return &freezableFile{File: file, fs: f}, nil
}

func (f *freezableFS) Open(name string) (segment.File, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	file, err := f.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return &freezableFile{File: file, fs: f}, nil
}

func (f *freezableFS) Remove(name string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.fs.Remove(name)
}

func (f *freezableFS) Rename(o, n string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.fs.Rename(o, n)
}

func (f *freezableFS) ReadDir(dir string) ([]segment.DirEntry, error) { return f.fs.ReadDir(dir) }

func (f *freezableFS) MkdirAll(dir string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.fs.MkdirAll(dir)
}

func (f *freezableFS) SyncDir(dir string) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.fs.SyncDir(dir)
}

type freezableFile struct {
	segment.File
	fs *freezableFS
}

func (f *freezableFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.check(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *freezableFile) Datasync() error {
	if err := f.fs.check(); err != nil {
		return err
	}
	return f.File.Datasync()
}

func (f *freezableFile) Truncate(size int64) error {
	if err := f.fs.check(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *freezableFile) Allocate(size int64) error {
	if err := f.fs.check(); err != nil {
		return err
	}
	return f.File.Allocate(size)
}
