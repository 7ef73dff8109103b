// Package phpsession_test serves index.php with `php -S` and PHP's own
// session handler through phpredis (session.save_handler=redis), unchanged,
// against the Redis fronts of a three-peer mesh: the same session through
// two peers, and a logout that holds everywhere.
package phpsession_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
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

// startPHP serves this directory with php -S, sessions in the Redis front
// at redisAddr, and returns its base URL.
func startPHP(t *testing.T, php, redisAddr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(php,
		"-d", "session.save_handler=redis",
		"-d", "session.save_path=tcp://"+redisAddr,
		"-d", "session.gc_maxlifetime=1440",
		"-S", addr, "-t", ".")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("php -S %s:\n%s", addr, out.String())
		}
	})
	url := "http://" + addr
	meshtest.Eventually(t, 10*time.Second, "php -S to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return url
}

type page struct {
	User  *string `json:"user"`
	Views int     `json:"views"`
	ID    string  `json:"id"`
}

func get(t *testing.T, c *http.Client, url string) page {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p page
	if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return p
}

func TestPHPSessionAcrossPeers(t *testing.T) {
	php := meshtest.NeedTool(t, "php")
	if out, err := exec.Command(php, "-m").Output(); err != nil || !strings.Contains(string(out), "\nredis\n") {
		if os.Getenv("CI") == "true" {
			t.Fatalf("php has no redis extension (Debian: php-redis), required under CI=true: %v", err)
		}
		t.Skip("php has no redis extension (Debian: php-redis)")
	}
	nodes := meshtest.Start(t, 3, nil)
	var fronts []string
	for _, n := range nodes {
		fronts = append(fronts, meshtest.ServeRedis(t, n, redisfront.Config{}))
	}
	siteA, siteB := startPHP(t, php, fronts[0]), startPHP(t, php, fronts[1])

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	login := get(t, browser, siteA+"/?login=alice")
	if login.User == nil || *login.User != "alice" || login.ID == "" {
		t.Fatalf("login through peer A: %+v", login)
	}
	// Replication takes milliseconds; a request through B before the
	// session got there would start an empty one under the same id (PHP
	// does not use strict mode by default), so wait for it as a user's next
	// click would.
	ctx := context.Background()
	key := "PHPREDIS_SESSION:" + login.ID
	rb := redis.NewClient(&redis.Options{Addr: fronts[1]})
	defer rb.Close()
	meshtest.Eventually(t, 10*time.Second, key+" on peer B", func() bool { return rb.Exists(ctx, key).Val() == 1 })
	p := get(t, browser, siteB+"/")
	if p.User == nil || *p.User != "alice" || p.ID != login.ID || p.Views != 2 {
		t.Fatalf("through peer B: %+v, want alice's session with a second view", p)
	}

	rc := redis.NewClient(&redis.Options{Addr: fronts[2]})
	defer rc.Close()
	meshtest.Eventually(t, 10*time.Second, key+" on the third peer", func() bool {
		v, err := rc.Get(ctx, key).Result()
		return err == nil && strings.Contains(v, `user|s:5:"alice"`)
	})
	if ttl := rc.TTL(ctx, key).Val(); ttl < 1400*time.Second || ttl > 1440*time.Second {
		t.Errorf("TTL = %v, want session.gc_maxlifetime (1440 s)", ttl)
	}

	// Logout through B. PHP keeps the cookie; its next request through A
	// starts an empty session under the same id (a new generation of the
	// key), never the destroyed one.
	u, _ := neturl.Parse(siteA)
	before := jar.Cookies(u)
	if p := get(t, browser, siteB+"/?logout=1"); p.User != nil {
		t.Errorf("logout page: %+v", p)
	}
	for _, addr := range fronts {
		c := redis.NewClient(&redis.Options{Addr: addr})
		meshtest.Eventually(t, 10*time.Second, "the logout on "+addr, func() bool {
			return errors.Is(c.Get(ctx, key).Err(), redis.Nil)
		})
		c.Close()
	}
	replayJar, _ := cookiejar.New(nil)
	replayJar.SetCookies(u, before)
	replay := &http.Client{Jar: replayJar, Timeout: 10 * time.Second}
	p = get(t, replay, siteA+"/")
	if p.User != nil || p.Views != 1 {
		t.Errorf("the logged-out session id through A: %+v, want an empty session", p)
	}
	if p.ID != login.ID {
		t.Logf("PHP gave a new id %s (strict mode)", p.ID)
	}
	if v := rc.Get(ctx, "PHPREDIS_SESSION:"+p.ID).Val(); strings.Contains(v, "alice") {
		t.Errorf("the destroyed session's data came back: %q", v)
	}
}
