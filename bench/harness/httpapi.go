package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// daemon is a `sessionmesh serve` process the harness started.
type daemon struct {
	cmd   *exec.Cmd
	url   string
	addr  string // libp2p address, for --bootstrap
	redis string // host:port of the Redis front, with --redis
}

// startDaemon runs the daemon binary on free loopback ports and waits for
// its banner; extra are more flags (with "--mesh", the last one wins).
func startDaemon(ctx context.Context, e *env, name string, bootstrap []string, extra ...string) (*daemon, error) {
	dir := filepath.Join(e.work, name)
	args := []string{"serve",
		"--data-dir", dir,
		"--listen", "/ip4/127.0.0.1/tcp/0",
		"--http", "127.0.0.1:0",
		"--durability", "none",
		"--mesh", "bench-http",
		"--log-level", "warn",
	}
	if len(bootstrap) > 0 {
		args = append(args, "--bootstrap", strings.Join(bootstrap, ","))
	}
	args = append(args, extra...)
	cmd := exec.Command(e.daemonBin, args...)
	logf, err := os.Create(filepath.Join(e.work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := e.procs.start(cmd); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd}
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "peer address:") && d.addr == "":
				d.addr = strings.TrimSpace(strings.TrimPrefix(line, "peer address:"))
			case strings.HasPrefix(line, "redis:"):
				d.redis = strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, "redis:")), "redis://")
			case strings.HasPrefix(line, "http api:"):
				d.url = strings.TrimSpace(strings.TrimPrefix(line, "http api:"))
				once.Do(func() { close(banner) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		logf.Close()
		e.procs.done(cmd)
	}()
	select {
	case <-banner:
		return d, nil
	case <-e.procs.exited(cmd):
		return nil, fmt.Errorf("daemon %s exited before serving (log: %s)", name, logf.Name())
	case <-time.After(60 * time.Second):
		e.procs.stop(cmd, 5*time.Second)
		return nil, fmt.Errorf("daemon %s printed no banner in 60 s", name)
	case <-ctx.Done():
		e.procs.stop(cmd, 5*time.Second)
		return nil, ctx.Err()
	}
}

// startDaemonMesh starts n daemons named prefix0.., each bootstrapping to
// the ones before it, with extra flags, and waits until each has the
// others in its gossip mesh. It returns the daemons started even on
// error: stop them with stopDaemons.
func startDaemonMesh(ctx context.Context, e *env, prefix string, n int, extra ...string) ([]*daemon, error) {
	var ds []*daemon
	for i := range n {
		var boot []string
		for _, d := range ds {
			boot = append(boot, d.addr)
		}
		d, err := startDaemon(ctx, e, fmt.Sprintf("%s%d", prefix, i), boot, extra...)
		if err != nil {
			return ds, err
		}
		ds = append(ds, d)
	}
	hc := newHTTPClient(4)
	if err := waitFor(ctx, 30*time.Second, func() bool {
		for _, d := range ds {
			var v peersView
			if hc.do(ctx, "GET", d.url+"/v1/peers", "", nil, 200, &v) != nil || len(v.Peers) != n-1 {
				return false
			}
			for _, p := range v.Peers {
				if !p.GossipMesh {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return ds, fmt.Errorf("daemons did not form a mesh: %w", err)
	}
	return ds, nil
}

func stopDaemons(e *env, ds []*daemon) {
	for _, d := range ds {
		e.procs.stop(d.cmd, 15*time.Second)
	}
}

type httpClient struct {
	c *http.Client
}

func newHTTPClient(conns int) *httpClient {
	return &httpClient{c: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        4 * conns,
			MaxIdleConnsPerHost: 2 * conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}}
}

func (h *httpClient) do(ctx context.Context, method, url, token string, body []byte, want int, into any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Session-Token", token)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(data))
	}
	if into != nil {
		return json.Unmarshal(data, into)
	}
	return nil
}

type peersView struct {
	Peers []struct {
		ID         string `json:"id"`
		GossipMesh bool   `json:"gossip_mesh"`
	} `json:"peers"`
}

type sessionView struct {
	Fields map[string]string `json:"fields"`
}

// benchHTTP: the daemon's HTTP API (create, read) on a peer of a 3-daemon
// mesh against Redis through its own protocol, at the same concurrency.
func benchHTTP(ctx context.Context, e *env) error {
	ds, err := startDaemonMesh(ctx, e, "daemon", 3)
	defer stopDaemons(e, ds)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	hc := newHTTPClient(64)
	fields := sessionData(0)
	createBody, err := json.Marshal(map[string]any{"fields": stringFields(fields)})
	if err != nil {
		return err
	}
	d0 := ds[0]
	// Sessions to read, and a sample of created ones to look for on the
	// other daemons at the end.
	var created []string
	var createdMu sync.Mutex
	smCreate := func(w, i int) error {
		var r struct{ Token string }
		if err := hc.do(ctx, "POST", d0.url+"/v1/sessions", "", createBody, 201, &r); err != nil {
			return err
		}
		if r.Token == "" {
			return fmt.Errorf("http: create returned no token")
		}
		if i%64 == 0 {
			createdMu.Lock()
			created = append(created, r.Token)
			createdMu.Unlock()
		}
		return nil
	}
	redisCreate := func(w, i int) error {
		k := redisKey(redisToken())
		p := e.redisAOF.Pipeline()
		p.HSet(ctx, k, redisArgs(fields)...)
		p.Expire(ctx, k, 30*time.Minute)
		_, err := p.Exec(ctx)
		return err
	}
	const readSessions = 1000
	var smTokens []string
	for range readSessions {
		var r struct{ Token string }
		if err := hc.do(ctx, "POST", d0.url+"/v1/sessions", "", createBody, 201, &r); err != nil {
			return err
		}
		smTokens = append(smTokens, r.Token)
	}
	rTokens, err := loadRedisSessions(ctx, e.redisAOF, 0, readSessions, 1)
	if err != nil {
		return err
	}
	smRead := func(w, i int) error {
		var s sessionView
		if err := hc.do(ctx, "GET", d0.url+"/v1/session", smTokens[(w*7919+i*31)%readSessions], nil, 200, &s); err != nil {
			return fmt.Errorf("%w: http read: %w", errLost, err)
		}
		if len(s.Fields) != sessionFields {
			return fmt.Errorf("%w: http read: %d fields", errLost, len(s.Fields))
		}
		return nil
	}
	redisRead := func(w, i int) error {
		m, err := e.redisAOF.HGetAll(ctx, redisKey(rTokens[(w*7919+i*31)%readSessions])).Result()
		if err != nil {
			return err
		}
		if len(m) != sessionFields {
			return fmt.Errorf("%w: redis read: %d fields", errLost, len(m))
		}
		return nil
	}
	sec := "HTTP API of the daemon (JSON over HTTP/1.1, keep-alive) vs Redis protocol"
	const (
		setSM   = "3 daemons, durability none"
		setR    = "HGETALL, everysec"
		setRCre = "HSET 10 fields + EXPIRE pipelined, everysec"
	)
	for _, c := range e.set.HTTPConc {
		for _, op := range []struct {
			name       string
			sm, rd     func(w, i int) error
			redisSetup string
		}{
			{"create", smCreate, redisCreate, setRCre},
			{"read", smRead, redisRead, setR},
		} {
			if _, err := runLoad(ctx, c, e.set.Warmup, op.sm); err != nil {
				return err
			}
			if _, err := runLoad(ctx, c, e.set.Warmup, op.rd); err != nil {
				return err
			}
			rs, err := interleave(e.set.Rounds,
				func() (loadResult, error) { return runLoad(ctx, c, e.set.HTTPDur, op.sm) },
				func() (loadResult, error) { return runLoad(ctx, c, e.set.HTTPDur, op.rd) },
			)
			if err != nil {
				return err
			}
			w := fmt.Sprintf("%d client%s", c, plural(c))
			e.rep.add(pairRow(sec, op.name+" requests/s, "+w, "req/s", rs[0], rs[1], fOps, setSM, op.redisSetup))
			e.rep.add(pairRow(sec, op.name+" p50, "+w, "µs", rs[0], rs[1], fP50, setSM, op.redisSetup))
			e.rep.add(pairRow(sec, op.name+" p99, "+w, "µs", rs[0], rs[1], fP99, setSM, op.redisSetup))
		}
	}
	// Every sampled session created through daemon 0 reached the others.
	for _, d := range ds[1:] {
		for _, tk := range created {
			err := waitFor(ctx, e.set.ConvergeWithin, func() bool {
				var s sessionView
				return hc.do(ctx, "GET", d.url+"/v1/session", tk, nil, 200, &s) == nil && len(s.Fields) == sessionFields
			})
			if err != nil {
				return fmt.Errorf("%w: a session created over HTTP never reached %s", errNotConverged, d.url)
			}
		}
	}
	e.rep.detail("http_created_sessions_checked_on_peers", len(created))
	return nil
}
