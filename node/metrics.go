package node

// Metrics receives the node's counters and observations; the daemon exports
// them (Prometheus). Names are stable; label values are given in pairs.
//
// Counters: deltas_sent, deltas_received, deltas_rejected{reason},
// deltas_deferred, batches_sent, sync_rounds{result}, sync_bytes{dir},
// changes_dropped, sessions_collected, whole_state_writes,
// version_entries_dropped, gap_fetches, sync_rounds_after_loss. Observations: batch_deltas, batch_bytes,
// replication_lag_seconds, sync_seconds, peer_clock_offset_seconds{peer}.
type Metrics interface {
	Add(name string, delta float64, labels ...string)
	Observe(name string, value float64, labels ...string)
}

type nopMetrics struct{}

func (nopMetrics) Add(string, float64, ...string)     {}
func (nopMetrics) Observe(string, float64, ...string) {}
