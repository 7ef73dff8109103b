package daemon

import (
	"encoding/hex"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric the daemon exports.
const Namespace = "sessionmesh"

// Buckets of the node's histograms that are not durations.
var (
	batchDeltaBuckets = prometheus.ExponentialBuckets(1, 4, 8)      // 1 .. 16384 deltas
	batchByteBuckets  = prometheus.ExponentialBuckets(64, 4, 9)     // 64 B .. 4 MiB
	lagBuckets        = prometheus.ExponentialBuckets(0.001, 4, 10) // 1 ms .. 4.4 min
)

// gauges are node observations that are estimates of a current value,
// exported as gauges holding the latest observation rather than as
// histograms.
var gauges = map[string]bool{"peer_clock_offset_seconds": true}

// help describes the node's metrics (node.Metrics); others get a generic
// line.
var help = map[string]string{
	"deltas_sent":               "Local deltas broadcast to the mesh.",
	"deltas_received":           "Deltas received by gossip.",
	"deltas_rejected":           "Deltas refused or dropped, by reason.",
	"deltas_deferred":           "Deltas kept aside because they were stamped too far ahead of local time.",
	"batches_sent":              "Gossip batches broadcast.",
	"sync_rounds":               "Anti-entropy rounds ended, by result.",
	"sync_bytes":                "Anti-entropy message bytes, by direction.",
	"changes_dropped":           "Changes a slow Watch subscriber missed.",
	"sessions_collected":        "Expired sessions removed by garbage collection.",
	"batch_deltas":              "Deltas per broadcast batch.",
	"batch_bytes":               "Bytes per broadcast batch.",
	"replication_lag_seconds":   "Time from a remote write to its arrival here.",
	"sync_seconds":              "Duration of anti-entropy rounds.",
	"peer_clock_offset_seconds": "Estimated clock offset of each peer (its clock minus ours), latest estimate.",
}

func helpFor(name, kind string) string {
	if h, ok := help[name]; ok {
		return h
	}
	return "Node " + kind + " " + name + "."
}

var badChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// Metrics implements node.Metrics with Prometheus: each counter name N
// becomes sessionmesh_N_total, each observation N a histogram sessionmesh_N
// (peer_clock_offset_seconds a gauge holding the latest estimate). A
// metric's label names are those of its first use; a later use with other
// label names is dropped and logged once.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	mu       sync.Mutex
	counters map[string]*vec[*prometheus.CounterVec]
	hists    map[string]*vec[*prometheus.HistogramVec]
	gauges   map[string]*vec[*prometheus.GaugeVec]
	warned   map[string]bool
}

type vec[V any] struct {
	labels []string
	v      V
}

// NewMetrics returns node metrics registered in reg.
func NewMetrics(reg *prometheus.Registry, log *slog.Logger) *Metrics {
	return &Metrics{
		reg:      reg,
		log:      log,
		counters: make(map[string]*vec[*prometheus.CounterVec]),
		hists:    make(map[string]*vec[*prometheus.HistogramVec]),
		gauges:   make(map[string]*vec[*prometheus.GaugeVec]),
		warned:   make(map[string]bool),
	}
}

// split separates label pairs into names and values; an odd trailing
// element is dropped.
func split(labels []string) (names, values []string) {
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, badChars.ReplaceAllString(labels[i], "_"))
		values = append(values, labelValue(labels[i], labels[i+1]))
	}
	return names, values
}

// labelValue makes a label value valid UTF-8, as Prometheus requires (it
// panics otherwise): invalid values are hex-encoded.
func labelValue(_, v string) string {
	if utf8.ValidString(v) {
		return v
	}
	return hex.EncodeToString([]byte(v))
}

func metricName(name string) string { return badChars.ReplaceAllString(name, "_") }

// mismatch logs, once per metric, a use with other label names than its
// first.
func (m *Metrics) mismatch(name string, want, got []string) {
	if m.warned[name] {
		return
	}
	m.warned[name] = true
	m.log.Warn("metrics: dropping a use with other labels than the first", "metric", name, "labels", got, "want", want)
}

// Add implements node.Metrics.
func (m *Metrics) Add(name string, delta float64, labels ...string) {
	if delta < 0 {
		return // counters only go up
	}
	names, values := split(labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[name]
	if !ok {
		cv := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      metricName(name) + "_total",
			Help:      helpFor(name, "counter"),
		}, names)
		if err := m.reg.Register(cv); err != nil {
			m.mismatch(name, nil, names)
			return
		}
		c = &vec[*prometheus.CounterVec]{labels: names, v: cv}
		m.counters[name] = c
	}
	if !slices.Equal(c.labels, names) {
		m.mismatch(name, c.labels, names)
		return
	}
	if m, err := c.v.GetMetricWithLabelValues(values...); err == nil {
		m.Add(delta)
	}
}

// Observe implements node.Metrics.
func (m *Metrics) Observe(name string, value float64, labels ...string) {
	names, values := split(labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	if gauges[name] {
		g, ok := m.gauges[name]
		if !ok {
			gv := prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: Namespace,
				Name:      metricName(name),
				Help:      helpFor(name, "estimate"),
			}, names)
			if err := m.reg.Register(gv); err != nil {
				m.mismatch(name, nil, names)
				return
			}
			g = &vec[*prometheus.GaugeVec]{labels: names, v: gv}
			m.gauges[name] = g
		}
		if !slices.Equal(g.labels, names) {
			m.mismatch(name, g.labels, names)
			return
		}
		if m, err := g.v.GetMetricWithLabelValues(values...); err == nil {
			m.Set(value)
		}
		return
	}
	h, ok := m.hists[name]
	if !ok {
		hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      metricName(name),
			Help:      helpFor(name, "observation"),
			Buckets:   bucketsFor(name),
		}, names)
		if err := m.reg.Register(hv); err != nil {
			m.mismatch(name, nil, names)
			return
		}
		h = &vec[*prometheus.HistogramVec]{labels: names, v: hv}
		m.hists[name] = h
	}
	if !slices.Equal(h.labels, names) {
		m.mismatch(name, h.labels, names)
		return
	}
	if m, err := h.v.GetMetricWithLabelValues(values...); err == nil {
		m.Observe(value)
	}
}

func bucketsFor(name string) []float64 {
	switch {
	case name == "batch_deltas":
		return batchDeltaBuckets
	case strings.HasSuffix(name, "_bytes"):
		return batchByteBuckets
	case name == "replication_lag_seconds":
		return lagBuckets
	default:
		return prometheus.DefBuckets
	}
}
