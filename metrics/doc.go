// Package metrics exports a sessionmesh node's metrics to Prometheus, for
// the daemon and for any service embedding a node: create them with New,
// hand them to the node in its Config, and register them once.
//
//	m := metrics.New()
//	cfg := p2pnode.DefaultConfig()
//	cfg.Metrics = m
//	prometheus.MustRegister(m)
//	n, err := p2pnode.Open(ctx, cfg)
//
// Every collector is created by New, so every counter (and every known
// label value of a labelled one) is exported at zero from the first
// scrape, and an update is an atomic add on a collector chosen by a switch
// on the metric's name: no lock, lookup or allocation on the node's paths.
//
// Names (all prefixed sessionmesh_): counters deltas_sent_total,
// deltas_received_total, deltas_rejected_total{reason},
// deltas_deferred_total, batches_sent_total, sync_rounds_total{result},
// sync_bytes_total{dir}, changes_dropped_total, sessions_collected_total,
// send_queue_waits_total, whole_state_writes_total,
// version_entries_dropped_total, gap_fetches_total,
// sync_rounds_after_loss_total; under partial replication
// slots_moved_total{dir}, sessions_handed_off_total, handoff_bytes_total,
// deltas_not_held_total, remote_reads_total, remote_reads_widened_total,
// remote_reads_failed_total{reason}, the gauges slots_held and slots_moving
// and the histogram remote_read_seconds;
// histograms batch_deltas, batch_bytes, replication_lag_seconds,
// sync_seconds; the gauge peer_clock_offset_seconds{peer}; and
// build_info{version,revision,goversion}, always 1. metrics_dropped_total
// counts updates of a metric this package does not know, which a test
// keeps at zero for the node's own metrics.
package metrics
