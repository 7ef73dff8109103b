package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the sessionmesh binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessionmesh-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sessionmesh")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running `sessionmesh serve`.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{}
	exitErr error

	peerID  string
	p2pAddr string // full multiaddr, for --bootstrap
	url     string // http://host:port
	redis   string // host:port of the Redis front, when --redis is given
	bearer  string // API token sent by call, if set
}

// startProc starts `sessionmesh serve` on free loopback ports with the given
// data dir and extra flags, and waits until it prints where it listens. It
// is stopped (SIGKILL) at the end of the test if still running.
func startProc(t *testing.T, name, dataDir string, extra ...string) *proc {
	t.Helper()
	return startProcOn(t, name, "127.0.0.1", dataDir, extra...)
}

// startProcOn is startProc with both listeners on the loopback address ip
// (TCP only), as kernel cut tests need: one address per peer.
func startProcOn(t *testing.T, name, ip, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve",
		"--data-dir", dataDir,
		"--listen", "/ip4/" + ip + "/tcp/0",
		"--http", ip + ":0",
		"--durability", "none",
		"--log-level", "debug",
	}, extra...)
	p := &proc{t: t, name: name, cmd: exec.Command(binary, args...), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	banner := make(chan struct{})
	var bannerOnce sync.Once
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "peer id:"):
				p.peerID = strings.TrimSpace(strings.TrimPrefix(line, "peer id:"))
			case strings.HasPrefix(line, "peer address:") && p.p2pAddr == "":
				p.p2pAddr = strings.TrimSpace(strings.TrimPrefix(line, "peer address:"))
			case strings.HasPrefix(line, "redis:"):
				p.redis = strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, "redis:")), "redis://")
			case strings.HasPrefix(line, "http api:"):
				p.url = strings.TrimSpace(strings.TrimPrefix(line, "http api:"))
				bannerOnce.Do(func() { close(banner) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.stderr.String())
		}
	})
	select {
	case <-banner:
	case <-p.exited:
		t.Fatalf("%s exited before serving: %v\n%s", name, p.exitErr, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not print its addresses in time\n%s", name, p.stderr.String())
	}
	if p.peerID == "" || !strings.HasSuffix(p.p2pAddr, "/p2p/"+p.peerID) || !strings.HasPrefix(p.url, "http://"+ip+":") {
		t.Fatalf("%s banner: id %q, address %q, http %q", name, p.peerID, p.p2pAddr, p.url)
	}
	return p
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: signal: %v", p.name, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v\n%s", p.name, timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case p.exitErr == nil:
		return 0
	case errors.As(p.exitErr, &ee):
		return ee.ExitCode()
	}
	p.t.Fatalf("%s: wait: %v", p.name, p.exitErr)
	return -1
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		p.t.Fatalf("%s exited with %d after SIGTERM\n%s", p.name, code, p.stderr.String())
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends one request and returns the status and body.
func (p *proc) call(method, path, token, body string) (int, string) {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Session-Token", token)
	}
	if p.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+p.bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %s %s: %v", p.name, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("%s: %s %s: reading the body: %v", p.name, method, path, err)
	}
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	defer func() { t.Logf("%v for %s", time.Since(start).Round(time.Millisecond), what) }()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
