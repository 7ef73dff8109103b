package simulations

// vclock is a node's local clock over the simulation's true time, both in
// nanoseconds since the epoch: local = true + off + (true - anchor)·ppm/10⁶.
// A step moves off; a drift change re-anchors so that local time stays
// continuous.
type vclock struct {
	off    int64
	ppm    float64
	anchor int64
}

func (c *vclock) local(t int64) int64 {
	return t + c.off + int64(float64(t-c.anchor)*c.ppm/1e6)
}

// trueAt returns the earliest true time at which the local clock reads at
// least l (to the nanosecond, within float rounding).
func (c *vclock) trueAt(l int64) int64 {
	t := c.anchor + int64(float64(l-c.off-c.anchor)/(1+c.ppm/1e6))
	for range 64 {
		d := l - c.local(t)
		if d <= 0 {
			break
		}
		t += d
	}
	for range 64 {
		if c.local(t-1) < l {
			break
		}
		t--
	}
	return t
}

// setDrift changes the drift from true time t on, keeping local time
// continuous.
func (c *vclock) setDrift(t int64, ppm float64) {
	l := c.local(t)
	c.anchor = t
	c.ppm = ppm
	c.off = l - t
}

// step moves the clock by d nanoseconds.
func (c *vclock) step(d int64) { c.off += d }
