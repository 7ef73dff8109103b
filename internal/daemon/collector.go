package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionmesh/sessionmesh/transport"
)

// transportCollector exports transport.Stats, read at each scrape, as
// sessionmesh_transport_* metrics, and the number of connected peers.
type transportCollector struct {
	get func() *transport.Transport // nil until the node is open

	counters        []statCounter
	rejected        *prometheus.Desc
	peers           *prometheus.Desc
	refused         *prometheus.Desc
	recordsRejected *prometheus.Desc
	members         *prometheus.Desc
	reachable       *prometheus.Desc
	memberUp        *prometheus.Desc
	lastContact     *prometheus.Desc
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
		refused: prometheus.NewDesc(name("refusals_total"),
			"Inbound connection attempts refused, by reason (not_member, blocked, handshake, rate_limited).", []string{"reason"}, nil),
		recordsRejected: prometheus.NewDesc(name("records_rejected_total"), "Signed peer records ignored, by reason.", []string{"reason"}, nil),
		members:         prometheus.NewDesc(name("members"), "Members of the mesh known to this peer (itself excluded).", nil, nil),
		reachable: prometheus.NewDesc(name("members_reachable"),
			"Known members connected and answering pings. Below members: some are cut off from this peer.", nil, nil),
		memberUp: prometheus.NewDesc(name("member_connected"),
			"1 while the member is connected and answering, else 0.", []string{"peer", "region"}, nil),
		lastContact: prometheus.NewDesc(name("member_last_contact_seconds"),
			"Seconds since the member last gave a sign of life (connection, ping answer, direct frame).", []string{"peer", "region"}, nil),
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
	add("dial_attempts_total", "Dials of members (the probe traffic: about one per redial interval per absent member).", func(s transport.Stats) float64 { return f(s.DialAttempts) })
	add("dials_failed_total", "Dials of members that failed.", func(s transport.Stats) float64 { return f(s.DialsFailed) })
	add("members_joined_total", "Members learned.", func(s transport.Stats) float64 { return f(s.MembersJoined) })
	add("members_lost_total", "Times a connected member's last connection closed.", func(s transport.Stats) float64 { return f(s.MembersLost) })
	add("members_forgotten_total", "Members forgotten, by request or after the forget-after time.", func(s transport.Stats) float64 { return f(s.MembersForgotten) })
	add("failures_detected_total", "Connections closed because the member stopped answering pings.", func(s transport.Stats) float64 { return f(s.FailuresDetected) })
	add("quick_drops_total", "Connections closed within seconds of opening (usually the remote refusing us).", func(s transport.Stats) float64 { return f(s.QuickDrops) })
	add("records_accepted_total", "Signed peer records accepted.", func(s transport.Stats) float64 { return f(s.RecordsAccepted) })
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
	for _, d := range []*prometheus.Desc{c.rejected, c.peers, c.refused, c.recordsRejected, c.members, c.reachable, c.memberUp, c.lastContact} {
		ch <- d
	}
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
	for reason, n := range withZeros(st.GossipRejected, transport.RejectTooLarge, transport.RejectNotMember, transport.RejectBlocked, transport.RejectInvalid) {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(n), reason)
	}
	for reason, n := range withZeros(st.Refused, transport.RefuseNotMember, transport.RefuseBlocked, transport.RefuseHandshake, transport.RefuseRateLimited) {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
	for reason, n := range withZeros(st.RecordsRejected, transport.RecordInvalid, transport.RecordForged, transport.RecordNotMember,
		transport.RecordForgotten, transport.RecordRefused, transport.RecordTooMany) {
		ch <- prometheus.MustNewConstMetric(c.recordsRejected, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(len(t.Peers())))
	members := t.Members()
	now := time.Now()
	reachable := 0
	for _, m := range members {
		up := 0.0
		if m.Connected {
			up = 1
			reachable++
		}
		id := m.ID.String()
		ch <- prometheus.MustNewConstMetric(c.memberUp, prometheus.GaugeValue, up, id, m.Region)
		if !m.LastSeen.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, max(0, now.Sub(m.LastSeen).Seconds()), id, m.Region)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(len(members)))
	ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, float64(reachable))
}

// storeCollector exports the store's size: sessions held and disk use.
type storeCollector struct {
	get      func() statusStore // nil until the node is open
	sessions *prometheus.Desc
	disk     *prometheus.Desc
}

func newStoreCollector(get func() statusStore) *storeCollector {
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "store", n) }
	return &storeCollector{
		get:      get,
		sessions: prometheus.NewDesc(name("sessions"), "Sessions stored, tombstones of destroyed sessions included.", nil, nil),
		disk:     prometheus.NewDesc(name("disk_bytes"), "Disk space the store's files occupy.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.disk
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.get()
	if st == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.Len()))
	if du, err := st.DiskUsage(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(du))
	}
}

// withZeros is counts with every known reason in it, at 0 where it has not
// happened: a series that appears only at its first event leaves an alert
// on its rate (operations.md alerts on refusals) without data until then.
func withZeros(counts map[string]uint64, known ...string) map[string]uint64 {
	out := make(map[string]uint64, len(counts)+len(known))
	for _, r := range known {
		out[r] = 0
	}
	for r, n := range counts {
		out[r] = n
	}
	return out
}
