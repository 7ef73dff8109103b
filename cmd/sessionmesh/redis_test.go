package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
)

// redisCLI runs redis-cli against addr with the commands given on its
// standard input, one per line, and returns its output lines.
func redisCLI(t *testing.T, bin, addr, password, script string) []string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port}
	cmd := exec.Command(bin, args...)
	if password != "" {
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	}
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	// redis-cli follows an error reply with an empty line.
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Three real daemons with --redis: a session written by redis-cli through
// one peer's front is read by redis-cli and go-redis through the others'.
// The API token is the AUTH password; metrics count the commands.
func TestRedisFrontAcrossDaemons(t *testing.T) {
	t.Parallel()
	cli := meshtest.NeedTool(t, "redis-cli")
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	const token = "redis-front-test-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--redis", "127.0.0.1:0", "--api-token-file", tokenFile}
	p1 := startProc(t, "p1", filepath.Join(t.TempDir(), "p1"), common...)
	p2 := startProc(t, "p2", filepath.Join(t.TempDir(), "p2"), append(common, "--bootstrap", p1.p2pAddr)...)
	p3 := startProc(t, "p3", filepath.Join(t.TempDir(), "p3"), append(common, "--bootstrap", p1.p2pAddr)...)
	for _, p := range []*proc{p1, p2, p3} {
		p.bearer = token
		if p.redis == "" {
			t.Fatalf("%s printed no redis address", p.name)
		}
	}
	eventually(t, 20*time.Second, "the gossip meshes", func() bool {
		return inMesh(p1, p2.peerID, p3.peerID) && inMesh(p2, p1.peerID) && inMesh(p3, p1.peerID)
	})

	// Without the password, nothing but AUTH.
	if got := redisCLI(t, cli, p2.redis, "", "GET x\nAUTH wrong\n"); strings.Join(got, "|") !=
		"NOAUTH Authentication required.|WRONGPASS invalid username-password pair or user is disabled." {
		t.Errorf("without password: %q", got)
	}

	got := redisCLI(t, cli, p2.redis, token, strings.Join([]string{
		"PING",
		`SET sess:abc '{"user":"alice"}' EX 600`,
		"HSET spring:session:s1 sessionAttr:user bob creationTime 1700000000000",
		"EXPIRE spring:session:s1 1800",
		"GET sess:abc",
		"TTL sess:abc",
	}, "\n")+"\n")
	want := []string{"PONG", "OK", "2", "1", `{"user":"alice"}`, "600"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("redis-cli on p2: %q, want %q", got, want)
	}

	ctx := context.Background()
	for _, p := range []*proc{p1, p3} {
		eventually(t, 20*time.Second, "the string and the hash through "+p.name, func() bool {
			out := redisCLI(t, cli, p.redis, token, "GET sess:abc\nHGET spring:session:s1 sessionAttr:user\n")
			return strings.Join(out, "|") == `{"user":"alice"}|bob`
		})
		c := redis.NewClient(&redis.Options{Addr: p.redis, Password: token})
		h, err := c.HGetAll(ctx, "spring:session:s1").Result()
		c.Close()
		if err != nil || h["sessionAttr:user"] != "bob" || h["creationTime"] != "1700000000000" || len(h) != 2 {
			t.Errorf("go-redis HGETALL through %s: %v, %v", p.name, h, err)
		}
	}

	// Logout through p3: gone through every front.
	if out := redisCLI(t, cli, p3.redis, token, "DEL sess:abc\n"); strings.Join(out, "") != "1" {
		t.Errorf("DEL: %q", out)
	}
	for _, p := range []*proc{p1, p2} {
		eventually(t, 20*time.Second, "the delete through "+p.name, func() bool {
			return strings.Join(redisCLI(t, cli, p.redis, token, "EXISTS sess:abc\n"), "") == "0"
		})
	}

	status, body := p2.call("GET", "/metrics", "", "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, line := range []string{
		`sessionmesh_redis_commands_total{command="set"} 1`,
		`sessionmesh_redis_command_errors_total{command="get"} 1`,
		`sessionmesh_redis_auth_failures_total 1`,
		`sessionmesh_redis_command_duration_seconds_count{command="hset"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	// Lowering a TTL: redis-cli on p1 shortens a key saved for an hour,
	// redis-cli on p3 and go-redis on p2 see the shorter TTL, and the key
	// expires everywhere after it.
	got = redisCLI(t, cli, p1.redis, token, "SET sess:low v EX 3600\nEXPIRE sess:low 100 LT\nEXPIRE sess:low 50 GT\nSETEX sess:low 60 w\nPEXPIRE sess:low 4000\nTTL sess:low\n")
	if want := "OK|1|0|OK|1|4"; strings.Join(got, "|") != want {
		t.Errorf("lowering through p1: %q, want %q", got, want)
	}
	eventually(t, 20*time.Second, "the lowered TTL through p3", func() bool {
		out := redisCLI(t, cli, p3.redis, token, "GET sess:low\nPTTL sess:low\n")
		if len(out) != 2 || out[0] != "w" {
			return false
		}
		ms, err := strconv.Atoi(out[1])
		return err == nil && ms > 0 && ms <= 4000
	})
	c := redis.NewClient(&redis.Options{Addr: p2.redis, Password: token})
	defer c.Close()
	eventually(t, 20*time.Second, "the lowered TTL through go-redis on p2", func() bool {
		ttl, err := c.PTTL(ctx, "sess:low").Result()
		return err == nil && ttl > 0 && ttl <= 4*time.Second
	})
	// go-redis on p2 lowers it again (GETEX); p1 follows, then it expires.
	if v, err := c.GetEx(ctx, "sess:low", 1500*time.Millisecond).Result(); err != nil || v != "w" {
		t.Errorf("GETEX PX 1500 through p2: %q, %v", v, err)
	}
	eventually(t, 20*time.Second, "the key to expire on p1 and p3 after its lowered TTL", func() bool {
		return strings.Join(redisCLI(t, cli, p1.redis, token, "EXISTS sess:low\n"), "") == "0" &&
			strings.Join(redisCLI(t, cli, p3.redis, token, "EXISTS sess:low\n"), "") == "0"
	})
	p2.stop()
}
