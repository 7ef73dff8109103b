package metrics

import "github.com/prometheus/client_golang/prometheus"

// partialMetrics are partial replication's (node.Config.Replicas,
// docs/partial-replication.md).
type partialMetrics struct {
	slotsMoved        *prometheus.CounterVec
	slotsIn, slotsOut prometheus.Counter
	slotsHeld         prometheus.Gauge
	slotsMoving       prometheus.Gauge
	handedOff         prometheus.Counter
	handoffBytes      prometheus.Counter
	notHeld           prometheus.Counter
	remoteReads       prometheus.Counter
	remoteCached      prometheus.Counter
	remoteWidened     prometheus.Counter
	remoteFailed      *prometheus.CounterVec
	remoteNoHolder    prometheus.Counter
	remoteTimeout     prometheus.Counter
	remoteSeconds     prometheus.Histogram
	directBatches     prometheus.Counter
	directDeltas      prometheus.Counter
}

func newPartialMetrics() *partialMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help})
	}
	p := &partialMetrics{
		slotsMoved: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "slots_moved_total",
			Help: "Slots this peer gained (dir=in) or lost (dir=out) through placement changes."}, []string{"dir"}),
		slotsHeld:     gauge("slots_held", "Slots this peer holds (all of them under full replication)."),
		slotsMoving:   gauge("slots_moving", "Slots gained and not yet compared with a holder, plus slots this peer stores sessions of without holding them."),
		handedOff:     counter("sessions_handed_off_total", "Sessions dropped here once every holder of their slot in this region stored them."),
		handoffBytes:  counter("handoff_bytes_total", "Bytes of sessions sent to their holders by handoff."),
		notHeld:       counter("deltas_not_held_total", "Received deltas of slots this peer does not hold, left to their holders."),
		remoteReads:   counter("remote_reads_total", "Reads of sessions this peer does not hold, asked of their holders."),
		remoteCached:  counter("remote_reads_cached_total", "Reads of sessions this peer does not hold, answered from what it read of them less than a second ago."),
		remoteWidened: counter("remote_reads_widened_total", "Reads of sessions this peer does not hold whose own region's holders stayed silent for ConsistencyWait, asked again of the other regions' holders."),
		remoteFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "remote_reads_failed_total",
			Help: "Remote reads that got no answer from some or all holders, by reason."}, []string{"reason"}),
		directBatches: counter("direct_batches_sent_total", "Batches of local deltas sent straight to the peers that hold their sessions (one per peer per flush)."),
		directDeltas:  counter("direct_deltas_sent_total", "Local deltas sent straight to the peers that hold their sessions, counted once per peer."),
		remoteSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "remote_read_seconds",
			Help: "Time of a read of a session this peer does not hold, from its holders.", Buckets: lagBuckets}),
	}
	p.slotsIn, p.slotsOut = p.slotsMoved.WithLabelValues("in"), p.slotsMoved.WithLabelValues("out")
	p.remoteNoHolder, p.remoteTimeout = p.remoteFailed.WithLabelValues("no_holder"), p.remoteFailed.WithLabelValues("timeout")
	return p
}

func (p *partialMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.slotsMoved, p.slotsHeld, p.slotsMoving, p.handedOff, p.handoffBytes, p.notHeld,
		p.remoteReads, p.remoteCached, p.remoteWidened, p.remoteFailed, p.remoteSeconds, p.directBatches, p.directDeltas}
}

// add is Add for partial replication's counters; false for other names.
func (p *partialMetrics) add(name string, delta float64, labels []string) bool {
	switch name {
	case "slots_moved":
		switch v, _ := label("dir", labels); v {
		case "in":
			p.slotsIn.Add(delta)
		case "out":
			p.slotsOut.Add(delta)
		default:
			return false
		}
	case "sessions_handed_off":
		p.handedOff.Add(delta)
	case "handoff_bytes":
		p.handoffBytes.Add(delta)
	case "deltas_not_held":
		p.notHeld.Add(delta)
	case "remote_reads":
		p.remoteReads.Add(delta)
	case "remote_reads_cached":
		p.remoteCached.Add(delta)
	case "remote_reads_widened":
		p.remoteWidened.Add(delta)
	case "direct_batches_sent":
		p.directBatches.Add(delta)
	case "direct_deltas_sent":
		p.directDeltas.Add(delta)
	case "remote_reads_failed":
		switch v, _ := label("reason", labels); v {
		case "no_holder":
			p.remoteNoHolder.Add(delta)
		case "timeout":
			p.remoteTimeout.Add(delta)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// observe is Observe for partial replication's gauges and histogram.
func (p *partialMetrics) observe(name string, value float64) bool {
	switch name {
	case "slots_held":
		p.slotsHeld.Set(value)
	case "slots_moving":
		p.slotsMoving.Set(value)
	case "remote_read_seconds":
		p.remoteSeconds.Observe(value)
	default:
		return false
	}
	return true
}
