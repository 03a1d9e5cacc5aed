package server

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// heldRequest is a request a holdHandler did not answer.
type heldRequest struct {
	sh  *Shard
	ref ConnRef
	seq uint64
	msg []byte
	rel Hold
}

// holdHandler answers nothing itself: it hands every request to the test.
type holdHandler struct{ held chan heldRequest }

func (h holdHandler) Serve(sh *Shard, req *Request) {
	h.held <- heldRequest{sh: sh, ref: req.Conn, seq: req.Seq, msg: req.Message, rel: req.Retain()}
}

// A message pushed into a shard's inbox while the shards stop, by a peer
// that then stops before any doorbell for it reaches the kernel, still
// runs, and the stop ends. Here the message is pushed without a doorbell
// at all, by a shard draining its last connection.
func TestStopRunsMessagesWithoutDoorbell(t *testing.T) {
	h := holdHandler{held: make(chan heldRequest, 1)}
	s, err := Start(Config{Listen: "127.0.0.1:0", Cores: 2, Handler: h,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("hold me"))); err != nil {
		t.Fatal(err)
	}
	req := <-h.held
	peer := s.Shards()[1-req.sh.ID()]

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	// Once the peer drains, the doorbell that told it to stop has been
	// handled; nothing else will ring it.
	for deadline := time.Now().Add(10 * time.Second); !peer.drainBegun.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the peer shard did not start draining")
		}
	}
	// The held request keeps its shard draining. Answer it from there,
	// after pushing a message to the peer without arming its doorbell.
	var ran atomic.Int32
	if err := req.sh.Post(func(sh *Shard) {
		if !peer.inbox.Push(func(*Shard) { ran.Add(1) }) {
			panic("peer inbox full")
		}
		sh.Respond(req.ref, req.seq, req.msg)
		req.rel.Release()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(c); err != nil {
		t.Fatalf("the held request's answer: %v", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stop still waiting after 20 s for a message no doorbell announced")
	}
	if ran.Load() != 1 {
		t.Fatal("the message pushed during the stop did not run")
	}
}
