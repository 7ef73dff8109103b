package simulations

import (
	"strings"
)

// coreMetrics collects the counters the cores report (node.Metrics).
type coreMetrics struct {
	counters map[string]float64
}

func metricKey(name string, labels []string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteByte('=')
		b.WriteString(labels[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// Add implements node.Metrics.
func (m *coreMetrics) Add(name string, delta float64, labels ...string) {
	switch name {
	case "sync_bytes", "deltas_received", "deltas_sent", "batches_sent":
		return // the engine counts traffic itself
	}
	if m.counters == nil {
		m.counters = map[string]float64{}
	}
	m.counters[metricKey(name, labels)] += delta
}

// Observe implements node.Metrics; the engine measures lag and sizes
// itself.
func (m *coreMetrics) Observe(string, float64, ...string) {}

// Sample is one point of the divergence series.
type Sample struct {
	T Duration `json:"t"`
	// Live is the number of running nodes; Digests the number of distinct
	// store digests among them (1 when they agree).
	Live    int `json:"live"`
	Digests int `json:"digests"`
	// Unreplicated counts (acknowledged write, running node) pairs where
	// the node does not hold the write yet.
	Unreplicated int64 `json:"unreplicated"`
	// Cumulative counts.
	Writes      int64 `json:"writes"`
	GossipMsgs  int64 `json:"gossip_msgs"`
	GossipBytes int64 `json:"gossip_bytes"`
	AEMsgs      int64 `json:"ae_msgs"`
	AEBytes     int64 `json:"ae_bytes"`
}

func (e *engine) sample() Sample {
	e.chk.sweep()
	s := Sample{T: Duration(e.now), Digests: e.distinctRoots(), Unreplicated: e.chk.pendingPairs, Writes: e.wl.writes()}
	for _, n := range e.nodes {
		if n.up {
			s.Live++
		}
	}
	for ch, st := range e.stats.channels {
		if channel(ch) == chGossip {
			s.GossipMsgs += st.Sent
			s.GossipBytes += st.Bytes
		} else {
			s.AEMsgs += st.Sent
			s.AEBytes += st.Bytes
		}
	}
	return s
}
