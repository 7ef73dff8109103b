package simulations

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// WriteReport writes a self-contained HTML report: the verdict, the figures,
// divergence over time with fault periods shaded, and the replication lag
// CDF, as inline SVG.
func (r *Result) WriteReport(w io.Writer) error {
	var b strings.Builder
	esc := htmlText
	status, color := "PASS", "#1a7f37"
	if !r.Verdict.Pass {
		status, color = "FAIL", "#cf222e"
	}
	f := r.Figures
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s seed %d</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1f2328;max-width:1000px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f6f8fa}.pass{color:#1a7f37}.fail{color:#cf222e}.muted{color:#656d76}
svg{background:#fff;border:1px solid #d0d7de}code{font-size:12px}
</style></head><body>
<h1>%s <span style="color:%s">%s</span></h1>
<p>%s</p>
<p class="muted">seed %d · %.0f s simulated in %.2f s · fingerprint <code>%s</code></p>
`, esc(r.Scenario.Name), r.Seed, esc(r.Scenario.Name), color, status, esc(r.Scenario.Description),
		r.Seed, f.Simulated, r.Wall.Seconds(), r.Fingerprint)

	b.WriteString("<h2>Verdict</h2><table><tr><th>check</th><th>measured</th><th>expected</th><th></th></tr>\n")
	for _, c := range r.Verdict.Checks {
		res, cls := "not judged", "muted"
		if c.Judged {
			res, cls = "pass", "pass"
			if !c.Pass {
				res, cls = "fail", "fail"
			}
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td class=%q>%s</td></tr>\n", esc(c.Name), esc(c.Measured), esc(c.Expected), cls, res)
	}
	b.WriteString("</table>\n")
	fmt.Fprintf(&b, `<p class="muted">Convergence and reconnection are measured from the last heal at %s. %d sessions fell in %d of the %d digest buckets.`,
		secs(f.Heal), f.Sessions, f.Buckets, persist.Buckets)
	if len(r.Faults) > 0 {
		fmt.Fprintf(&b, ` While faults were active (not judged): up to %d distinct digests and %d unreplicated (write, node) pairs.`, f.FaultPeakDigests, f.FaultPeakUnreplicated)
	}
	if f.AllowedLost > 0 || f.DiskErrors > 0 {
		fmt.Fprintf(&b, ` Durability: %d writes a power loss was allowed to lose (durability none), %d store calls failed by disk faults (clients' writes and peers' batches).`, f.AllowedLost, f.DiskErrors)
	}
	b.WriteString("</p>\n")

	// Plots come right after the verdict, violations (long) after them,
	// folded.
	b.WriteString("<h2>Divergence over time</h2>\n")
	b.WriteString(`<p class="muted">Distinct store digests among running nodes (left axis; 1 means they agree) and unreplicated (write, running node) pairs (right axis).</p>`)
	b.WriteString(r.divergenceSVG())
	b.WriteString(r.legend())
	b.WriteString("<h2>Replication lag</h2>\n")
	if len(r.Lags) == 0 {
		b.WriteString(`<p class="muted">No write reached another node: no lag to show.</p>`)
	} else {
		fmt.Fprintf(&b, `<p class="muted">CDF over %d (write, node) pairs of the time from acknowledgement to the node holding the write or something newer, a write being one field set or removed, or a create, touch or destroy (a client's write of several fields counts each); %d more pairs were found held by a look at the stores (a write merged into a newer state changes nothing, so when it arrived is unknown), and %d never arrived (unreplicated at the end): neither is in it. p50 %s, p90 %s, p99 %s, max %s.</p>`,
			len(r.Lags), f.SilentlyCovered, f.Unreplicated, secs(f.LagP50), secs(f.LagP90), secs(f.LagP99), secs(f.LagMax))
	}
	b.WriteString(r.lagSVG())
	if len(r.Violations) > 0 {
		fmt.Fprintf(&b, "<h2>Violations</h2><details><summary>%d example(s), at most %d per check</summary><table><tr><th>check</th><th>t</th><th>node</th><th>session</th><th>detail</th></tr>\n", len(r.Violations), maxExamples)
		for _, v := range r.Violations {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				esc(v.Check), esc(v.T.String()), esc(v.Node), esc(v.Session), esc(v.Detail))
		}
		b.WriteString("</table></details>\n")
	}

	b.WriteString("<h2>Traffic</h2><table><tr><th>channel</th><th>sent</th><th>bytes</th><th>delivered</th><th>lost</th><th>duplicated</th></tr>\n")
	for _, name := range channelNames {
		c := f.Channels[name]
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>\n", name, c.Sent, c.Bytes, c.Delivered, c.Lost, c.Duplicated)
	}
	fmt.Fprintf(&b, "<tr><th>total</th><th>%d</th><th>%d</th><th colspan=3>%.0f bytes per acknowledged write (%d writes)</th></tr></table>\n", f.Messages, f.Bytes, f.BytesPerWrite, f.Writes)

	b.WriteString("<h2>Operations</h2><table><tr><th>op</th><th>attempted</th><th>acknowledged</th><th>missed</th></tr>\n")
	for _, name := range opNames {
		o := f.Ops[name]
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>\n", name, o.Attempted, o.Acked, o.Missed)
	}
	fmt.Fprintf(&b, "</table><p class=\"muted\">%d operations found their node down; %d writes only ever held by a node down at the end (not judged).</p>\n", f.Unavailable, f.Stranded)

	b.WriteString("<h2>Faults</h2><table><tr><th>from</th><th>to</th><th>fault</th></tr>\n")
	for _, p := range r.Faults {
		end := "never"
		if p.End >= 0 {
			end = p.End.String()
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td></tr>\n", p.Start, end, esc(p.Label))
	}
	b.WriteString("</table>\n<h2>Core counters</h2><table>\n")
	for _, k := range sortedKeys(f.Core) {
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%g</td></tr>\n", esc(k), f.Core[k])
	}
	b.WriteString("</table>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// faultColors shade the fault periods by kind.
var faultColors = map[string]string{
	"partition": "#cf222e", "one_way": "#bf3989", "flap": "#8250df", "degrade": "#bc4c00",
	"crash": "#57606a", "clock": "#0969da", "disk": "#953800",
}

func faultColor(kind string) string {
	if c, ok := faultColors[kind]; ok {
		return c
	}
	return "#cf222e"
}

// legend explains the divergence plot's lines and shading.
func (r *Result) legend() string {
	var b strings.Builder
	b.WriteString(`<p class="muted" style="font-size:12px">`)
	swatch := func(style, label string) {
		fmt.Fprintf(&b, `<span style="display:inline-block;width:22px;height:10px;vertical-align:middle;%s"></span> %s &nbsp; `, style, label)
	}
	swatch("border-top:2px solid #0969da", "distinct digests")
	swatch("border-top:2px solid #bc4c00", "unreplicated pairs")
	swatch("border-top:2px dashed #57606a", "settle (workload stopped, faults healed)")
	if r.Figures.Converge >= 0 {
		swatch("border-top:2px dashed #1a7f37", "converged")
	}
	seen := map[string]bool{}
	for _, p := range r.Faults {
		if !seen[p.Kind] {
			seen[p.Kind] = true
			swatch(fmt.Sprintf("background:%s;opacity:0.35", faultColor(p.Kind)), htmlText(p.Kind)+" (shaded)")
		}
	}
	b.WriteString("</p>\n")
	return b.String()
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond * 100).String()
}

const (
	plotW, plotH                   = 900, 280
	padL, padR, padT, padB         = 50, 60, 15, 35
	innerW, innerH         float64 = plotW - padL - padR, plotH - padT - padB
)

func (r *Result) divergenceSVG() string {
	var b strings.Builder
	end := r.Figures.Simulated
	if end <= 0 {
		end = 1
	}
	x := func(t float64) float64 { return padL + innerW*t/end }
	maxD, maxU := 1, int64(1)
	for _, s := range r.Series {
		maxD = max(maxD, s.Digests, s.Live)
		maxU = max(maxU, s.Unreplicated)
	}
	yD := func(v int) float64 { return padT + innerH*(1-float64(v)/float64(maxD)) }
	yU := func(v int64) float64 { return padT + innerH*(1-float64(v)/float64(maxU)) }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-size="11">`, plotW, plotH, plotW, plotH)
	for _, p := range r.Faults {
		s := p.Start.D().Seconds()
		e := end
		if p.End >= 0 {
			e = p.End.D().Seconds()
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="%s" fill-opacity="0.14"><title>%s</title></rect>`,
			x(s), padT, math.Max(x(e)-x(s), 1), innerH, faultColor(p.Kind), htmlText(p.Label))
	}
	// axes
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#57606a"/>`, padL, padT+innerH, padL+innerW, padT+innerH)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.0f" stroke="#57606a"/>`, padL, padT, padL, padT+innerH)
	for _, t := range ticks(end, 8) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#57606a"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`,
			x(t), padT+innerH, x(t), padT+innerH+4, x(t), padT+innerH+16, time.Duration(t*float64(time.Second)).String())
	}
	for _, v := range ticks(float64(maxD), 5) {
		iv := int(v)
		if float64(iv) != v {
			continue
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#0969da">%d</text>`, padL-5, yD(iv)+4, iv)
	}
	for _, v := range ticks(float64(maxU), 5) {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" fill="#bc4c00">%d</text>`, padL+innerW+5, yU(int64(v))+4, int64(v))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">time</text>`, padL+int(innerW/2), plotH-3)
	// settle and convergence
	settle := r.Figures.Settle
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#57606a" stroke-dasharray="4 3"><title>settle</title></line>`, x(settle), padT, x(settle), padT+innerH)
	if c := r.Figures.Converge; c >= 0 {
		at := r.Figures.Heal + c
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#1a7f37" stroke-dasharray="4 3"><title>converged</title></line>`, x(at), padT, x(at), padT+innerH)
	}
	var pd, pu strings.Builder
	for i, s := range r.Series {
		t := s.T.D().Seconds()
		if i == 0 {
			fmt.Fprintf(&pd, "M%.1f,%.1f", x(t), yD(s.Digests))
			fmt.Fprintf(&pu, "M%.1f,%.1f", x(t), yU(s.Unreplicated))
			continue
		}
		fmt.Fprintf(&pd, "H%.1fV%.1f", x(t), yD(s.Digests))
		fmt.Fprintf(&pu, "L%.1f,%.1f", x(t), yU(s.Unreplicated))
	}
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#bc4c00" stroke-width="1.2"/>`, pu.String())
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#0969da" stroke-width="1.6"/>`, pd.String())
	b.WriteString("</svg>\n")
	return b.String()
}

func (r *Result) lagSVG() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-size="11">`, plotW, plotH, plotW, plotH)
	lags := r.Lags
	if len(lags) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no replicated writes</text></svg>`, plotW/2, plotH/2)
		return b.String()
	}
	lo := math.Max(lags[0], 1e-4)
	hi := math.Max(lags[len(lags)-1], lo*10)
	llo, lhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	x := func(v float64) float64 {
		v = math.Max(v, lo)
		return padL + innerW*(math.Log10(v)-llo)/(lhi-llo)
	}
	y := func(q float64) float64 { return padT + innerH*(1-q) }
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#57606a"/>`, padL, padT+innerH, padL+innerW, padT+innerH)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.0f" stroke="#57606a"/>`, padL, padT, padL, padT+innerH)
	for e := llo; e <= lhi; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#d0d7de"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`,
			x(v), padT, x(v), padT+innerH, x(v), padT+innerH+16, secs(v))
	}
	for _, q := range []float64{0, 0.25, 0.5, 0.75, 0.9, 0.99, 1} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eaeef2"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`,
			padL, y(q), padL+innerW, y(q), padL-5, y(q)+4, q)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">lag (log scale)</text>`, padL+int(innerW/2), plotH-3)
	var p strings.Builder
	const points = 400
	for i := 0; i <= points; i++ {
		q := float64(i) / points
		v := quantile(lags, q)
		if i == 0 {
			fmt.Fprintf(&p, "M%.1f,%.1f", x(v), y(q))
		} else {
			fmt.Fprintf(&p, "L%.1f,%.1f", x(v), y(q))
		}
	}
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#0969da" stroke-width="1.6"/>`, p.String())
	b.WriteString("</svg>\n")
	return b.String()
}

// ticks returns about n round values in [0, max].
func ticks(maxV float64, n int) []float64 {
	if maxV <= 0 {
		return []float64{0}
	}
	raw := maxV / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := 0.0; v <= maxV*1.0001; v += step {
		out = append(out, v)
	}
	return out
}

// htmlText escapes s for an HTML page, control characters (which a page
// may not hold: a NUL is a parse error) written as \xNN.
func htmlText(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return html.EscapeString(s)
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
		} else {
			b.WriteRune(r)
		}
	}
	return html.EscapeString(b.String())
}

func isControl(r rune) bool { return (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f }
