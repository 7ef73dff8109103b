package metrics

import (
	"encoding/hex"
	"runtime"
	"runtime/debug"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric name.
const Namespace = "sessionmesh"

// Module is the module path whose version build_info reports.
const Module = "github.com/sessionmesh/sessionmesh"

// Label values the node uses, created at New so that their series exist
// (at zero) from the first scrape and a call with them reaches its child
// without a lookup. Other values still work, through the vector.
var (
	rejectReasons = []string{"malformed", "invalid", "expired", "deferred_overflow", "send_queue_full", "bad_sync_message"}
	roundResults  = []string{"agree", "repaired", "busy", "timeout", "refused_busy", "peer_lost", "peer_failed", "store_failed"}
)

// Buckets of the histograms.
var (
	batchDeltaBuckets = prometheus.ExponentialBuckets(1, 4, 8)      // 1 .. 16384 deltas
	batchByteBuckets  = prometheus.ExponentialBuckets(64, 4, 9)     // 64 B .. 4 MiB
	lagBuckets        = prometheus.ExponentialBuckets(0.001, 4, 10) // 1 ms .. 4.4 min
)

// Node holds a node's metrics as typed Prometheus collectors, all created
// by New. It implements node.Metrics (set it as node.Config.Metrics) and
// prometheus.Collector (register it once):
//
//	m := metrics.New()
//	cfg.Metrics = m
//	reg.MustRegister(m)
//
// A call costs a switch on the metric's name and an atomic add (a
// histogram observation for observations): no lock, no allocation, no
// lookup by name. A Node serves one node: two nodes in one process need
// two Nodes, registered with a prometheus.WrapRegistererWith label each.
type Node struct {
	deltasSent        prometheus.Counter
	deltasReceived    prometheus.Counter
	deltasDeferred    prometheus.Counter
	batchesSent       prometheus.Counter
	changesDropped    prometheus.Counter
	sessionsCollected prometheus.Counter
	sendQueueWaits    prometheus.Counter
	wholeStateWrites  prometheus.Counter
	versionsDropped   prometheus.Counter
	gapFetches        prometheus.Counter
	roundsAfterLoss   prometheus.Counter
	syncBytesIn       prometheus.Counter
	syncBytesOut      prometheus.Counter
	dropped           prometheus.Counter

	deltasRejected *prometheus.CounterVec
	rejected       map[string]prometheus.Counter // read only after New
	syncRounds     *prometheus.CounterVec
	rounds         map[string]prometheus.Counter // read only after New
	syncBytes      *prometheus.CounterVec

	batchDeltas prometheus.Histogram
	batchBytes  prometheus.Histogram
	lag         prometheus.Histogram
	syncSeconds prometheus.Histogram
	// Session consistency (node.WithVersion): the wait of calls that found
	// this peer behind, the fetches it made, the calls answered ErrStale.
	consistencyWait    prometheus.Histogram
	consistencyFetches prometheus.Counter
	consistencyStale   prometheus.Counter
	clockOffset        *prometheus.GaugeVec

	buildInfo prometheus.Gauge

	part *partialMetrics

	all []prometheus.Collector
}

// New returns a node's metrics, every counter at zero.
func New() *Node {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
	}
	m := &Node{
		deltasSent:        counter("deltas_sent_total", "Local deltas broadcast to the mesh."),
		deltasReceived:    counter("deltas_received_total", "Deltas received by gossip."),
		deltasDeferred:    counter("deltas_deferred_total", "Deltas kept aside because they were stamped too far ahead of local time."),
		batchesSent:       counter("batches_sent_total", "Gossip batches broadcast."),
		changesDropped:    counter("changes_dropped_total", "Changes a slow Watch subscriber missed."),
		sessionsCollected: counter("sessions_collected_total", "Expired sessions removed by garbage collection."),
		sendQueueWaits:    counter("send_queue_waits_total", "Direct messages that waited for room in a peer's full outbound queue."),
		wholeStateWrites: counter("whole_state_writes_total",
			"Versioned local writes that carried the session's whole state: the first write of a session after a start, or after merging writes no version entry stands for. The others carry only what changed."),
		versionsDropped: counter("version_entries_dropped_total",
			"Version entries of remote change-only writes not taken because this peer lacked what the writer held before (a lost or late delta); anti-entropy or a fetch brings them."),
		gapFetches: counter("gap_fetches_total",
			"Sessions asked of their writers because a change-only write showed this peer had missed an earlier one."),
		roundsAfterLoss: counter("sync_rounds_after_loss_total",
			"Anti-entropy rounds started early with a peer that deltas were lost on the way to (a gossip queue overflowed, a direct send failed)."),
		dropped: counter("metrics_dropped_total",
			"Node metric updates this build of the metrics package does not know (a bug: please report it)."),
		deltasRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "deltas_rejected_total",
			Help: "Deltas refused or dropped, by reason."}, []string{"reason"}),
		syncRounds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "sync_rounds_total",
			Help: "Anti-entropy rounds ended, by result."}, []string{"result"}),
		syncBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "sync_bytes_total",
			Help: "Anti-entropy message bytes, by direction."}, []string{"dir"}),
		batchDeltas: histogram("batch_deltas", "Deltas per broadcast batch.", batchDeltaBuckets),
		batchBytes:  histogram("batch_bytes", "Bytes per broadcast batch.", batchByteBuckets),
		lag:         histogram("replication_lag_seconds", "Time from a remote write to its arrival here.", lagBuckets),
		syncSeconds: histogram("sync_seconds", "Duration of anti-entropy rounds.", prometheus.DefBuckets),
		consistencyWait: histogram("consistency_wait_seconds",
			"Wait of calls carrying a session version that found this peer behind it, until it caught up.", lagBuckets),
		consistencyFetches: counter("consistency_fetches_total",
			"Sessions asked of the peers that wrote them because replication had not brought a version in time."),
		consistencyStale: counter("consistency_stale_total",
			"Calls carrying a session version this peer could not reach in time (answered ErrStale, HTTP 503)."),
		clockOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "peer_clock_offset_seconds",
			Help: "Estimated clock offset of each peer (its clock minus ours), latest estimate."}, []string{"peer"}),
		rejected: make(map[string]prometheus.Counter, len(rejectReasons)),
		rounds:   make(map[string]prometheus.Counter, len(roundResults)),
	}
	for _, r := range rejectReasons {
		m.rejected[r] = m.deltasRejected.WithLabelValues(r)
	}
	for _, r := range roundResults {
		m.rounds[r] = m.syncRounds.WithLabelValues(r)
	}
	m.syncBytesIn = m.syncBytes.WithLabelValues("in")
	m.syncBytesOut = m.syncBytes.WithLabelValues("out")
	version, revision := buildVersion()
	m.buildInfo = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; its labels name the sessionmesh version, VCS revision and Go version of this build.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()}})
	m.buildInfo.Set(1)
	m.all = []prometheus.Collector{m.deltasSent, m.deltasReceived, m.deltasDeferred, m.batchesSent, m.changesDropped,
		m.sessionsCollected, m.sendQueueWaits, m.wholeStateWrites, m.versionsDropped, m.gapFetches, m.roundsAfterLoss, m.dropped, m.deltasRejected, m.syncRounds, m.syncBytes, m.batchDeltas, m.batchBytes, m.lag,
		m.syncSeconds, m.consistencyWait, m.consistencyFetches, m.consistencyStale, m.clockOffset, m.buildInfo}
	m.part = newPartialMetrics()
	m.all = append(m.all, m.part.collectors()...)
	return m
}

// Describe implements prometheus.Collector.
func (m *Node) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Node) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}

// Add implements node.Metrics.
func (m *Node) Add(name string, delta float64, labels ...string) {
	if delta < 0 {
		return // counters only go up
	}
	switch name {
	case "deltas_sent":
		m.deltasSent.Add(delta)
	case "deltas_received":
		m.deltasReceived.Add(delta)
	case "deltas_deferred":
		m.deltasDeferred.Add(delta)
	case "batches_sent":
		m.batchesSent.Add(delta)
	case "changes_dropped":
		m.changesDropped.Add(delta)
	case "sessions_collected":
		m.sessionsCollected.Add(delta)
	case "consistency_fetches":
		m.consistencyFetches.Add(delta)
	case "consistency_stale":
		m.consistencyStale.Add(delta)
	case "send_queue_waits":
		m.sendQueueWaits.Add(delta)
	case "whole_state_writes":
		m.wholeStateWrites.Add(delta)
	case "version_entries_dropped":
		m.versionsDropped.Add(delta)
	case "gap_fetches":
		m.gapFetches.Add(delta)
	case "sync_rounds_after_loss":
		m.roundsAfterLoss.Add(delta)
	case "deltas_rejected":
		m.labelled(m.deltasRejected, m.rejected, "reason", labels).Add(delta)
	case "sync_rounds":
		m.labelled(m.syncRounds, m.rounds, "result", labels).Add(delta)
	case "sync_bytes":
		switch v, _ := label("dir", labels); v {
		case "in":
			m.syncBytesIn.Add(delta)
		case "out":
			m.syncBytesOut.Add(delta)
		default:
			m.dropped.Inc()
		}
	default:
		if !m.part.add(name, delta, labels) {
			m.dropped.Inc()
		}
	}
}

// Observe implements node.Metrics.
func (m *Node) Observe(name string, value float64, labels ...string) {
	switch name {
	case "batch_deltas":
		m.batchDeltas.Observe(value)
	case "batch_bytes":
		m.batchBytes.Observe(value)
	case "replication_lag_seconds":
		m.lag.Observe(value)
	case "sync_seconds":
		m.syncSeconds.Observe(value)
	case "consistency_wait_seconds":
		m.consistencyWait.Observe(value)
	case "peer_clock_offset_seconds":
		// Once per anti-entropy exchange with a peer: rare enough for the
		// vector's lookup.
		peer, ok := label("peer", labels)
		if !ok {
			m.dropped.Inc()
			return
		}
		m.clockOffset.WithLabelValues(validUTF8(peer)).Set(value)
	default:
		if !m.part.observe(name, value) {
			m.dropped.Inc()
		}
	}
}

// labelled returns the child of vec for the value of label key: a
// pre-created one when known, else the vector's.
func (m *Node) labelled(vec *prometheus.CounterVec, known map[string]prometheus.Counter, key string, labels []string) prometheus.Counter {
	v, ok := label(key, labels)
	if !ok {
		return m.dropped
	}
	if c, ok := known[v]; ok {
		return c
	}
	return vec.WithLabelValues(validUTF8(v))
}

// label returns the value of key in labels, given as name, value pairs,
// when it is the only label.
func label(key string, labels []string) (string, bool) {
	if len(labels) != 2 || labels[0] != key {
		return "", false
	}
	return labels[1], true
}

// validUTF8 makes a label value valid UTF-8, as Prometheus requires (it
// panics otherwise): invalid values are hex-encoded.
func validUTF8(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	return hex.EncodeToString([]byte(v))
}

// buildVersion returns the version of the sessionmesh module in this
// binary (the main module's when sessionmesh is the main module, the
// dependency's when it is embedded) and the VCS revision when the build
// recorded one (main module only).
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	var mod *debug.Module
	if bi.Main.Path == Module {
		mod = &bi.Main
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	for _, d := range bi.Deps {
		if mod == nil && d.Path == Module {
			mod = d
			if d.Replace != nil {
				mod = d.Replace
			}
		}
	}
	if mod == nil {
		return
	}
	version = mod.Version
	if version == "" || version == "(devel)" {
		version = "devel"
	}
	return
}
