package metrics_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sessionmesh/sessionmesh/metrics"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/p2pnode"
)

var _ node.Metrics = (*metrics.Node)(nil)

func gather(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value returns the value of the series of fam with exactly the given
// labels (a histogram's sample count).
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
			if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
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

func TestUpdates(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New()
	reg.MustRegister(m)
	m.Add("deltas_sent", 3)
	m.Add("deltas_sent", 2)
	m.Add("deltas_rejected", 1, "reason", "expired")
	m.Add("deltas_rejected", 4, "reason", "malformed")
	m.Add("deltas_rejected", 2, "reason", "a_new_reason") // unknown values still count
	m.Add("deltas_rejected", 1)                           // no label: dropped
	m.Add("deltas_rejected", 1, "kind", "malformed")      // another label: dropped
	m.Add("deltas_sent", -1)                              // counters never go down
	m.Add("sync_bytes", 100, "dir", "in")
	m.Add("sync_bytes", 50, "dir", "out")
	m.Add("no_such_metric", 1) // dropped
	m.Observe("sync_seconds", 0.2)
	m.Observe("sync_seconds", 0.3)
	m.Observe("batch_bytes", 1000)
	m.Observe("peer_clock_offset_seconds", -0.5, "peer", "p1")
	m.Observe("peer_clock_offset_seconds", 0.25, "peer", "p1")
	// Anything not UTF-8 would make Prometheus panic: hex-encoded.
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
		{"sessionmesh_deltas_rejected_total", []string{"reason", "a_new_reason"}, 2},
		{"sessionmesh_sync_bytes_total", []string{"dir", "in"}, 100},
		{"sessionmesh_sync_bytes_total", []string{"dir", "out"}, 50},
		{"sessionmesh_sync_seconds", nil, 2},
		{"sessionmesh_batch_bytes", nil, 1},
		{"sessionmesh_peer_clock_offset_seconds", []string{"peer", "p1"}, 0.25},
		{"sessionmesh_sync_rounds_total", []string{"result", "ff"}, 1},
		{"sessionmesh_metrics_dropped_total", nil, 3},
	} {
		if got, ok := value(fams[c.name], c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if fams["sessionmesh_peer_clock_offset_seconds"].GetType() != dto.MetricType_GAUGE {
		t.Error("peer_clock_offset_seconds is not a gauge")
	}
	if fams["sessionmesh_replication_lag_seconds"].GetType() != dto.MetricType_HISTOGRAM {
		t.Error("replication_lag_seconds is not a histogram")
	}
	if !strings.Contains(fams["sessionmesh_deltas_sent_total"].GetHelp(), "broadcast") {
		t.Errorf("help: %q", fams["sessionmesh_deltas_sent_total"].GetHelp())
	}
}

// TestPresentFromStart: a scrape before anything happened shows every
// counter, and every known label value, at zero, and build_info.
func TestPresentFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New())
	fams := gather(t, reg)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"sessionmesh_deltas_sent_total", nil},
		{"sessionmesh_deltas_received_total", nil},
		{"sessionmesh_deltas_deferred_total", nil},
		{"sessionmesh_batches_sent_total", nil},
		{"sessionmesh_changes_dropped_total", nil},
		{"sessionmesh_sessions_collected_total", nil},
		{"sessionmesh_metrics_dropped_total", nil},
		{"sessionmesh_deltas_rejected_total", []string{"reason", "malformed"}},
		{"sessionmesh_deltas_rejected_total", []string{"reason", "send_queue_full"}},
		{"sessionmesh_sync_rounds_total", []string{"result", "repaired"}},
		{"sessionmesh_sync_rounds_total", []string{"result", "timeout"}},
		{"sessionmesh_sync_bytes_total", []string{"dir", "in"}},
		{"sessionmesh_sync_bytes_total", []string{"dir", "out"}},
		{"sessionmesh_replication_lag_seconds", nil},
		{"sessionmesh_batch_deltas", nil},
	} {
		if got, ok := value(fams[c.name], c.labels...); !ok || got != 0 {
			t.Errorf("%s%v = %v (found %v), want present at 0", c.name, c.labels, got, ok)
		}
	}
	bi := fams["sessionmesh_build_info"]
	if bi == nil || len(bi.GetMetric()) != 1 || bi.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("build_info: %v", bi)
	}
	labels := map[string]string{}
	for _, l := range bi.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] == "" || labels["revision"] == "" || !strings.HasPrefix(labels["goversion"], "go") {
		t.Errorf("build_info labels: %v", labels)
	}
}

// TestKnowsEveryNodeMetric reads the node package's sources for the
// metrics it updates and checks that each reaches a collector, and that
// each literal label value it uses is created at New (present at zero):
// it fails the day the node gains a metric this package does not export.
func TestKnowsEveryNodeMetric(t *testing.T) {
	files, err := filepath.Glob("../node/*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`\.m\.(Add|Observe)\("([a-z_]+)",(.*)\)\s*$`)
	label := regexp.MustCompile(`"([a-z_]+)",\s*([^,]+)$`)
	m := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	seen := 0
	var literal [][3]string // name, label, value
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(src), "\n") {
			c := call.FindStringSubmatch(line)
			if c == nil {
				continue
			}
			seen++
			var labels []string
			if l := label.FindStringSubmatch(strings.TrimSpace(c[3])); l != nil {
				v := "some_value"
				if strings.HasPrefix(l[2], `"`) {
					v = strings.Trim(l[2], `"`)
					literal = append(literal, [3]string{c[2], l[1], v})
				}
				labels = []string{l[1], v}
			}
			if c[1] == "Add" {
				m.Add(c[2], 1, labels...)
			} else {
				m.Observe(c[2], 1, labels...)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found %d metric updates in node's sources: the pattern no longer matches them", seen)
	}
	fams := gather(t, reg)
	if got, _ := value(fams["sessionmesh_metrics_dropped_total"]); got != 0 {
		t.Errorf("%v of node's %d metric updates reached no collector", got, seen)
	}
	fresh := gather(t, registryWith(metrics.New()))
	for _, l := range literal {
		fam := "sessionmesh_" + l[0] + "_total"
		if _, ok := value(fresh[fam], l[1], l[2]); !ok {
			t.Errorf("%s{%s=%q} is not created at New", fam, l[1], l[2])
		}
	}
}

func registryWith(c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg
}

// TestEmbeddedNode: a node opened with the metrics counts its work in the
// registry the embedding service serves.
func TestEmbeddedNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New()
	reg.MustRegister(m)
	cfg := p2pnode.DefaultConfig()
	cfg.Metrics = m
	ctx := context.Background()
	n, err := p2pnode.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(ctx)
	for range 3 {
		if _, err := n.Create(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := value(gather(t, reg)["sessionmesh_deltas_sent_total"])
		if got == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deltas_sent_total = %v after 3 creates, want 3", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkAdd: a labelled counter update on the node's paths.
func BenchmarkAdd(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.Add("deltas_rejected", 1, "reason", "malformed")
		m.Add("deltas_sent", 1)
	}
}

// TestDocumented: every metric New exports, and each label value it
// exports from the start, is in the metrics table of docs/http-api.md
// (which listed a label value the node never uses and left out fifteen
// metrics).
func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "http-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // metric name to its table row
	for _, line := range strings.Split(string(doc), "\n") {
		if m := regexp.MustCompile("^\\| `(sessionmesh_[a-z_]+)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New())
	fams := gather(t, reg)
	// And every label value a row lists for a node metric is exported.
	listed := regexp.MustCompile("\\(((?:`[a-z_]+`(?:, )?)+)\\)")
	for name, row := range rows {
		fam, ok := fams[name]
		if !ok {
			continue // the transport's or the store's, read at each scrape
		}
		for _, l := range listed.FindAllStringSubmatch(row, -1) {
			for _, v := range strings.Split(l[1], ", ") {
				v = strings.Trim(v, "`")
				found := false
				for _, m := range fam.GetMetric() {
					for _, lp := range m.GetLabel() {
						found = found || lp.GetValue() == v
					}
				}
				if !found {
					t.Errorf("docs/http-api.md lists %s label value %q, which is not exported", name, v)
				}
			}
		}
	}
	for name, fam := range fams {
		row, ok := rows[name]
		if !ok {
			t.Errorf("%s is exported but not in docs/http-api.md's metrics table", name)
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if name == "sessionmesh_build_info" {
					continue // values are the build's
				}
				if !strings.Contains(row, "`"+l.GetValue()+"`") {
					t.Errorf("%s{%s=%q} is exported but its row does not list it: %s", name, l.GetName(), l.GetValue(), row)
				}
			}
		}
	}
}
