package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionmesh/sessionmesh/transport"
)

// transportCollector exports transport.Stats, read at each scrape, as
// sessionmesh_transport_* metrics, and the number of connected peers.
type transportCollector struct {
	get func() *transport.Transport // nil until the node is open

	counters []statCounter
	rejected *prometheus.Desc
	peers    *prometheus.Desc
}

type statCounter struct {
	desc   *prometheus.Desc
	labels []string
	value  func(s transport.Stats) float64
}

func newTransportCollector(get func() *transport.Transport) *transportCollector {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "transport", n) }
	c := &transportCollector{
		get:      get,
		rejected: prometheus.NewDesc(name("gossip_rejected_total"), "Incoming gossip messages refused, by reason.", []string{"reason"}, nil),
		peers:    prometheus.NewDesc(name("peers"), "Permitted peers with an open connection.", nil, nil),
	}
	descs := make(map[string]*prometheus.Desc)
	add := func(n, help string, value func(s transport.Stats) float64, labels ...string) {
		var names []string
		for i := 0; i+1 < len(labels); i += 2 {
			names = append(names, labels[i])
		}
		d, ok := descs[n] // one Desc per metric name, shared by its series
		if !ok {
			d = prometheus.NewDesc(name(n), help, names, nil)
			descs[n] = d
		}
		c.counters = append(c.counters, statCounter{
			desc:   d,
			labels: labels,
			value:  value,
		})
	}
	f := func(v uint64) float64 { return float64(v) }
	add("gossip_published_total", "Broadcast calls handed to gossipsub.", func(s transport.Stats) float64 { return f(s.GossipPublished) })
	add("gossip_received_total", "Gossip messages delivered to the node.", func(s transport.Stats) float64 { return f(s.GossipReceived) })
	add("gossip_dropped_total", "Outbound gossipsub RPCs dropped on a full peer queue.", func(s transport.Stats) float64 { return f(s.GossipDropped) })
	add("gossip_undeliverable_total", "Gossip messages dropped because the node did not keep up.", func(s transport.Stats) float64 { return f(s.GossipUndeliverable) })
	add("gossip_bytes_total", "Gossip payload bytes.", func(s transport.Stats) float64 { return f(s.GossipBytesIn) }, "dir", "in")
	add("gossip_bytes_total", "Gossip payload bytes.", func(s transport.Stats) float64 { return f(s.GossipBytesOut) }, "dir", "out")
	add("direct_sent_total", "Direct frames written.", func(s transport.Stats) float64 { return f(s.DirectSent) })
	add("direct_send_failed_total", "Direct sends that failed.", func(s transport.Stats) float64 { return f(s.DirectSendFailed) })
	add("direct_received_total", "Direct frames delivered to the node.", func(s transport.Stats) float64 { return f(s.DirectReceived) })
	add("direct_malformed_total", "Inbound streams dropped on a malformed, oversized or stalled frame.", func(s transport.Stats) float64 { return f(s.DirectMalformed) })
	add("direct_bytes_total", "Direct frame payload bytes.", func(s transport.Stats) float64 { return f(s.DirectBytesIn) }, "dir", "in")
	add("direct_bytes_total", "Direct frame payload bytes.", func(s transport.Stats) float64 { return f(s.DirectBytesOut) }, "dir", "out")
	add("connections_refused_total", "Connections closed by the gater once the remote was authenticated.", func(s transport.Stats) float64 { return f(s.ConnectionsRefused) })
	add("bootstrap_dials_failed_total", "Failed dials of bootstrap peers.", func(s transport.Stats) float64 { return f(s.BootstrapDialsFailed) })
	return c
}

// Describe implements prometheus.Collector.
func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	seen := make(map[*prometheus.Desc]bool)
	for _, s := range c.counters {
		if !seen[s.desc] {
			seen[s.desc] = true
			ch <- s.desc
		}
	}
	ch <- c.rejected
	ch <- c.peers
}

// Collect implements prometheus.Collector.
func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.get()
	if t == nil {
		return
	}
	st := t.Stats()
	for _, s := range c.counters {
		var values []string
		for i := 1; i < len(s.labels); i += 2 {
			values = append(values, s.labels[i])
		}
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, s.value(st), values...)
	}
	for reason, n := range st.GossipRejected {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(len(t.Peers())))
}
