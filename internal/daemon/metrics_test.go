package daemon

import (
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
		// Counted by reason, every known reason from the start.
		{"sessionmesh_transport_refusals_total", []string{"reason", transport.RefuseNotMember}, 0},
		{"sessionmesh_transport_refusals_total", []string{"reason", transport.RefuseHandshake}, 0},
		{"sessionmesh_transport_gossip_rejected_total", []string{"reason", transport.RejectInvalid}, 0},
		{"sessionmesh_transport_records_rejected_total", []string{"reason", transport.RecordTooMany}, 0},
	} {
		if got, ok := value(fams[c.name], c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}
