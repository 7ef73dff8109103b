package redisfront

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the front's Prometheus metrics. Per-command children are
// resolved once, at startup, so that a command costs two atomic adds and a
// histogram observation.
type metrics struct {
	commands   *prometheus.CounterVec
	errors     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	connsOpen  prometheus.Gauge
	connsTotal prometheus.Counter
	rejected   prometheus.Counter
	authFails  prometheus.Counter
}

// cmdMetrics are one command's children.
type cmdMetrics struct {
	count, errors prometheus.Counter
	duration      prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "sessionmesh", "redis"
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commands_total",
			Help: "Redis commands executed, by command (unknown commands as \"unknown\")."}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "command_errors_total",
			Help: "Redis commands answered with an error, by command."}, []string{"command"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "command_duration_seconds",
			Help:    "Time to execute a Redis command, reply excluded, by command.",
			Buckets: prometheus.ExponentialBuckets(2e-6, 3, 13)}, []string{"command"}), // 2 µs .. 1 s
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections_open",
			Help: "Redis client connections open."}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "connections_total",
			Help: "Redis client connections accepted."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "connections_rejected_total",
			Help: "Redis client connections refused because max clients were connected."}),
		authFails: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "auth_failures_total",
			Help: "Redis AUTH and HELLO AUTH attempts with a wrong password."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.commands, m.errors, m.duration, m.connsOpen, m.connsTotal, m.rejected, m.authFails} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("redisfront: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) forCommand(name string) cmdMetrics {
	return cmdMetrics{
		count:    m.commands.WithLabelValues(name),
		errors:   m.errors.WithLabelValues(name),
		duration: m.duration.WithLabelValues(name),
	}
}
