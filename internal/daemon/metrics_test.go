package daemon

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sessionmesh/sessionmesh/transport"
)

// gather returns the families of reg by name.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value returns the value of the series of fam with the given labels.
func value(fam *dto.MetricFamily, labels ...string) (float64, bool) {
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		have := make(map[string]string)
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if len(have) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, discard)
	m.Add("deltas_sent", 3)
	m.Add("deltas_sent", 2)
	m.Add("deltas_rejected", 1, "reason", "expired")
	m.Add("deltas_rejected", 4, "reason", "malformed")
	m.Add("deltas_rejected", 1)                      // other label names: dropped
	m.Add("deltas_rejected", 1, "kind", "malformed") // likewise
	m.Add("deltas_sent", -1)                         // counters never go down
	m.Observe("sync_seconds", 0.2)
	m.Observe("sync_seconds", 0.3)
	m.Observe("batch_bytes", 1000)
	m.Observe("peer_clock_offset_seconds", -0.5, "peer", "p1")
	m.Observe("peer_clock_offset_seconds", 0.25, "peer", "p1")
	m.Add("some.new-metric", 1)
	// The node labels peers with text ids; anything not UTF-8 would make
	// Prometheus panic, so it is hex-encoded.
	m.Observe("peer_clock_offset_seconds", 1.5, "peer", "12D3KooWH4Zjrytakj5f4QEoG4nQh5YmZ9LGzzNUU3vgKLa5Kd3t")
	m.Add("sync_rounds", 1, "result", "\xff")

	fams := gather(t, reg)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sessionmesh_deltas_sent_total", nil, 5},
		{"sessionmesh_deltas_rejected_total", []string{"reason", "expired"}, 1},
		{"sessionmesh_deltas_rejected_total", []string{"reason", "malformed"}, 4},
		{"sessionmesh_sync_seconds", nil, 2},
		{"sessionmesh_batch_bytes", nil, 1},
		{"sessionmesh_peer_clock_offset_seconds", []string{"peer", "p1"}, 0.25},
		{"sessionmesh_some_new_metric_total", nil, 1},
		{"sessionmesh_peer_clock_offset_seconds", []string{"peer", "12D3KooWH4Zjrytakj5f4QEoG4nQh5YmZ9LGzzNUU3vgKLa5Kd3t"}, 1.5},
		{"sessionmesh_sync_rounds_total", []string{"result", "ff"}, 1},
	} {
		if got, ok := value(fams[c.name], c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n := len(fams["sessionmesh_deltas_rejected_total"].GetMetric()); n != 2 {
		t.Errorf("deltas_rejected has %d series, want 2", n)
	}
	if fams["sessionmesh_peer_clock_offset_seconds"].GetType() != dto.MetricType_GAUGE {
		t.Error("peer_clock_offset_seconds is not a gauge")
	}
	if !strings.Contains(fams["sessionmesh_deltas_sent_total"].GetHelp(), "broadcast") {
		t.Errorf("help: %q", fams["sessionmesh_deltas_sent_total"].GetHelp())
	}
}

func TestTransportCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var tr *transport.Transport
	reg.MustRegister(newTransportCollector(func() *transport.Transport { return tr }))
	if fams := gather(t, reg); len(fams) != 0 {
		t.Errorf("metrics before the transport exists: %v", fams)
	}
	var err error
	tr, err = transport.New(t.Context(), transport.DefaultConfig(), nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Broadcast(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	fams := gather(t, reg)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sessionmesh_transport_gossip_published_total", nil, 1},
		{"sessionmesh_transport_gossip_bytes_total", []string{"dir", "out"}, 1},
		{"sessionmesh_transport_gossip_bytes_total", []string{"dir", "in"}, 0},
		{"sessionmesh_transport_peers", nil, 0},
		{"sessionmesh_transport_bootstrap_dials_failed_total", nil, 0},
	} {
		if got, ok := value(fams[c.name], c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}
