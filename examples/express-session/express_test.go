// Package expresssession_test runs the example app (app.js, express-session
// with connect-redis and node-redis, unchanged) against the Redis fronts of
// a three-peer mesh: a login on one peer's app is seen by another peer's
// app, and a logout destroys the session everywhere.
package expresssession_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/redisfront"
)

// npmCI installs the app's packages (package-lock.json) when they are
// missing.
func npmCI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("node_modules/connect-redis"); err == nil {
		return
	}
	npm := meshtest.NeedTool(t, "npm")
	out, err := exec.Command(npm, "ci", "--no-audit", "--no-fund").CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
}

// startApp runs app.js against a Redis front and returns its base URL.
func startApp(t *testing.T, nodeBin, redisAddr string) string {
	t.Helper()
	cmd := exec.Command(nodeBin, "app.js")
	cmd.Env = append(os.Environ(), "PORT=0", "REDIS_URL=redis://"+redisAddr, "SESSION_SECRET=test-secret")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("app.js stderr:\n%s", stderr.String())
		}
	})
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				url <- u
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-url:
		return u
	case <-time.After(20 * time.Second):
		t.Fatalf("app.js did not start:\n%s", stderr.String())
		return ""
	}
}

type me struct {
	User  string `json:"user"`
	Views int    `json:"views"`
	SID   string `json:"sid"`
}

func call(t *testing.T, c *http.Client, method, url string) (int, me) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m me
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &m)
	return resp.StatusCode, m
}

func TestExpressSessionAcrossPeers(t *testing.T) {
	nodeBin := meshtest.NeedTool(t, "node")
	npmCI(t)
	nodes := meshtest.Start(t, 3, nil)
	var fronts []string
	for _, n := range nodes {
		fronts = append(fronts, meshtest.ServeRedis(t, n, redisfront.Config{}))
	}
	appA := startApp(t, nodeBin, fronts[0])
	appB := startApp(t, nodeBin, fronts[1])

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	status, login := call(t, browser, "POST", appA+"/login?user=alice")
	if status != 200 || login.User != "alice" || login.SID == "" {
		t.Fatalf("login on app A: %d %+v", status, login)
	}

	// The session is there through the other peer's app, and a write
	// there (views) comes back to the first.
	meshtest.Eventually(t, 10*time.Second, "the session through app B", func() bool {
		status, m := call(t, browser, "GET", appB+"/me")
		return status == 200 && m.User == "alice" && m.SID == login.SID
	})
	meshtest.Eventually(t, 10*time.Second, "app B's write through app A", func() bool {
		_, m := call(t, browser, "GET", appA+"/me")
		return m.Views >= 2
	})

	// The session is a key of the third peer too, with connect-redis' TTL.
	rc := redis.NewClient(&redis.Options{Addr: fronts[2]})
	defer rc.Close()
	ctx := context.Background()
	meshtest.Eventually(t, 10*time.Second, "sess:<sid> on the third peer", func() bool {
		return rc.Exists(ctx, "sess:"+login.SID).Val() == 1
	})
	if ttl := rc.TTL(ctx, "sess:"+login.SID).Val(); ttl < 25*time.Minute || ttl > 30*time.Minute {
		t.Errorf("TTL on the third peer = %v, want about the cookie's 30 minutes", ttl)
	}

	// Logout through app B: gone on every peer, and app A answers 401
	// even with the old cookie put back.
	u, _ := neturl.Parse(appA)
	cookies := jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != "sid" {
		t.Fatalf("cookies before logout: %v", cookies)
	}
	if status, _ := call(t, browser, "POST", appB+"/logout"); status != 200 {
		t.Fatalf("logout: %d", status)
	}
	for _, addr := range fronts {
		c := redis.NewClient(&redis.Options{Addr: addr})
		meshtest.Eventually(t, 10*time.Second, "the delete on "+addr, func() bool {
			return errors.Is(c.Get(ctx, "sess:"+login.SID).Err(), redis.Nil)
		})
		c.Close()
	}
	stale, _ := cookiejar.New(nil)
	stale.SetCookies(u, cookies)
	replay := &http.Client{Jar: stale, Timeout: 10 * time.Second}
	if status, _ := call(t, replay, "GET", appA+"/me"); status != 401 {
		t.Errorf("the logged-out cookie replayed on app A: %d, want 401", status)
	}
}
