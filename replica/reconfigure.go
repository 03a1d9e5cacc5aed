package replica

// SetAckUnsynced follows a change of the topic's flush policy at run time
// (Config.AckUnsynced). Leaving the sync policy lets the high watermark
// and acks=1 count written data at once; entering it makes them wait for
// durable data from now on, while the high watermark, which never moves
// back, stays where it is. A follower caught up under the sync policy
// waits for its log to be durable before its next fetch, as ever.
func (p *Partition) SetAckUnsynced(v bool) {
	p.mustBeAdvanced()
	if p.cfg.AckUnsynced == v {
		return
	}
	p.cfg.AckUnsynced = v
	if p.role == RoleLeader {
		p.maybeAdvanceHW()
		p.completeProduces()
	}
	p.check()
}
