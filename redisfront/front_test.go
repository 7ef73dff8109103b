package redisfront_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/redisfront"
)

// A value written through one peer's front is read through the others',
// strings and hashes, with per-field merges, and DEL is final everywhere.
func TestGoRedisAcrossPeers(t *testing.T) {
	fr := startFronts(t, 3, nil)
	ctx := context.Background()
	a, b, c := fr[0].client(t), fr[1].client(t), fr[2].client(t)

	if err := a.Set(ctx, "sess:1", `{"user":"alice"}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*redis.Client{b, c} {
		eventually(t, "the string on another peer", func() bool {
			v, err := cl.Get(ctx, "sess:1").Result()
			return err == nil && v == `{"user":"alice"}`
		})
	}
	if ttl := b.TTL(ctx, "sess:1").Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL on another peer = %v, want about 1h", ttl)
	}
	if typ := c.Type(ctx, "sess:1").Val(); typ != "string" {
		t.Errorf("TYPE = %q, want string", typ)
	}
	// A TTL lowered through one peer is lowered on the others.
	if !c.Expire(ctx, "sess:1", 20*time.Second).Val() {
		t.Fatal("EXPIRE 20 after SET EX 3600 answered 0")
	}
	for _, cl := range []*redis.Client{a, b} {
		eventually(t, "the lowered TTL on another peer", func() bool {
			ttl := cl.PTTL(ctx, "sess:1").Val()
			return ttl > 0 && ttl <= 20*time.Second
		})
	}

	// Hash fields written on two peers merge.
	if err := a.HSet(ctx, "spring:session:s1", "sessionAttr:user", "alice", "creationTime", "1").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the hash on peer b", func() bool { return b.Exists(ctx, "spring:session:s1").Val() == 1 })
	if err := b.HSet(ctx, "spring:session:s1", "sessionAttr:cart", "3").Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"sessionAttr:user": "alice", "creationTime": "1", "sessionAttr:cart": "3"}
	for _, cl := range []*redis.Client{a, b, c} {
		eventually(t, "merged hash fields on every peer", func() bool {
			got, err := cl.HGetAll(ctx, "spring:session:s1").Result()
			return err == nil && mapsEqual(got, want)
		})
	}
	if err := c.Get(ctx, "spring:session:s1").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		t.Errorf("GET of a hash: %v, want WRONGTYPE", err)
	}

	// DEL on one peer is final everywhere; a later SET makes a new session.
	if n := c.Del(ctx, "sess:1", "nope").Val(); n != 1 {
		t.Errorf("DEL = %d, want 1", n)
	}
	for _, cl := range []*redis.Client{a, b} {
		eventually(t, "the delete on every peer", func() bool { return errors.Is(cl.Get(ctx, "sess:1").Err(), redis.Nil) })
	}
	if err := b.Set(ctx, "sess:1", "again", 0).Err(); err != nil {
		t.Fatalf("SET after DEL: %v", err)
	}
	for _, cl := range []*redis.Client{a, c} {
		eventually(t, "the new session on every peer", func() bool { return cl.Get(ctx, "sess:1").Val() == "again" })
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The replies of each command as Redis gives them.
func TestCommandReplies(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	ctx := context.Background()
	r := f.client(t)
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("PING", r.Ping(ctx).Val(), "PONG")
	check("ECHO", r.Echo(ctx, "hi").Val(), "hi")
	check("SET NX new", r.SetNX(ctx, "k", "v1", time.Minute).Val(), true)
	check("SET NX existing", r.SetNX(ctx, "k", "v2", 0).Val(), false)
	check("SET XX missing", r.SetXX(ctx, "missing", "v", 0).Val(), false)
	check("GET", r.Get(ctx, "k").Val(), "v1")
	check("SET GET", r.SetArgs(ctx, "k", "v3", redis.SetArgs{Get: true}).Val(), "v1")
	check("GETEX", r.GetEx(ctx, "k", 90*time.Second).Val(), "v3")
	if ttl := r.TTL(ctx, "k").Val(); ttl < 89*time.Second || ttl > 90*time.Second {
		t.Errorf("TTL after GETEX EX 90 = %v", ttl)
	}
	check("TTL missing", r.TTL(ctx, "missing").Val(), time.Duration(-2))
	check("EXPIRE missing", r.Expire(ctx, "missing", time.Minute).Val(), false)
	check("EXPIRE", r.Expire(ctx, "k", 2*time.Hour).Val(), true)
	if ttl := r.PTTL(ctx, "k").Val(); ttl < 119*time.Minute || ttl > 2*time.Hour {
		t.Errorf("PTTL after EXPIRE 2h = %v", ttl)
	}
	check("EXPIRE NX", r.ExpireNX(ctx, "k", time.Hour).Val(), false)
	check("EXPIRE GT smaller", r.ExpireGT(ctx, "k", time.Hour).Val(), false)
	check("EXPIRE GT larger", r.ExpireGT(ctx, "k", 3*time.Hour).Val(), true)
	// Lowering, as Redis does it: EXPIRE, LT, SET ... EX, SETEX, GETEX.
	check("EXPIRE LT larger", r.ExpireLT(ctx, "k", 4*time.Hour).Val(), false)
	check("EXPIRE LT smaller", r.ExpireLT(ctx, "k", 10*time.Second).Val(), true)
	if ttl := r.PTTL(ctx, "k").Val(); ttl <= 9*time.Second || ttl > 10*time.Second {
		t.Errorf("PTTL after EXPIRE 3h then 10s = %v, want about 10s", ttl)
	}
	check("PEXPIREAT", r.PExpireAt(ctx, "k", time.Now().Add(5*time.Second)).Val(), true)
	if ttl := r.PTTL(ctx, "k").Val(); ttl <= 4*time.Second || ttl > 5*time.Second {
		t.Errorf("PTTL after PEXPIREAT +5s = %v", ttl)
	}
	check("SET EX 3600", r.Set(ctx, "low", "v", time.Hour).Val(), "OK")
	check("SET EX 3 over EX 3600", r.Set(ctx, "low", "w", 3*time.Second).Val(), "OK")
	if ttl := r.TTL(ctx, "low").Val(); ttl != 3*time.Second {
		t.Errorf("TTL after SET EX 3600 then SET EX 3 = %v, want 3s", ttl)
	}
	check("SETEX 2", r.SetEx(ctx, "low", "x", 2*time.Second).Val(), "OK")
	check("GETEX PX 1500", r.GetEx(ctx, "low", 1500*time.Millisecond).Val(), "x")
	if ttl := r.PTTL(ctx, "low").Val(); ttl <= time.Second || ttl > 1500*time.Millisecond {
		t.Errorf("PTTL after GETEX PX 1500 = %v", ttl)
	}
	eventually(t, "the key to expire after its lowered TTL", func() bool { return r.Exists(ctx, "low").Val() == 0 })
	check("EXPIRE 2h again", r.Expire(ctx, "k", 2*time.Hour).Val(), true)
	check("EXISTS", r.Exists(ctx, "k", "k", "missing").Val(), int64(2))
	check("TYPE none", r.Type(ctx, "missing").Val(), "none")
	check("SETEX", r.SetEx(ctx, "e", "x", time.Minute).Val(), "OK")
	check("MGET", strings.Join(toStrings(r.MGet(ctx, "k", "missing", "e").Val()), ","), "v3,<nil>,x")
	check("GETDEL", r.GetDel(ctx, "e").Val(), "x")
	check("GET after GETDEL", errors.Is(r.Get(ctx, "e").Err(), redis.Nil), true)
	check("EXPIRE 0 deletes", r.Expire(ctx, "k", -time.Second).Val(), true)
	check("EXISTS after EXPIRE 0", r.Exists(ctx, "k").Val(), int64(0))

	check("HSET", r.HSet(ctx, "h", "a", "1", "b", "2").Val(), int64(2))
	check("HSET again", r.HSet(ctx, "h", "a", "9", "c", "3").Val(), int64(1))
	check("HGET", r.HGet(ctx, "h", "a").Val(), "9")
	check("HMGET", strings.Join(toStrings(r.HMGet(ctx, "h", "a", "zz", "c").Val()), ","), "9,<nil>,3")
	check("HLEN", r.HLen(ctx, "h").Val(), int64(3))
	check("HKEYS", strings.Join(r.HKeys(ctx, "h").Val(), ","), "a,b,c")
	check("HVALS", strings.Join(r.HVals(ctx, "h").Val(), ","), "9,2,3")
	check("HEXISTS", r.HExists(ctx, "h", "b").Val(), true)
	check("HINCRBY", r.HIncrBy(ctx, "h", "n", 5).Val(), int64(5))
	check("HINCRBY again", r.HIncrBy(ctx, "h", "n", -7).Val(), int64(-2))
	check("HSETNX", r.HSetNX(ctx, "h", "a", "no").Val(), false)
	check("HDEL", r.HDel(ctx, "h", "a", "zz").Val(), int64(1))
	check("TYPE hash", r.Type(ctx, "h").Val(), "hash")
	check("HSET empty field", r.HSet(ctx, "h", "", "empty", "\x00k", "nul").Val(), int64(2))
	check("HGET empty field", r.HGet(ctx, "h", "").Val(), "empty")
	check("HGET NUL field", r.HGet(ctx, "h", "\x00k").Val(), "nul")
	check("HDEL all", r.HDel(ctx, "h", "b", "c", "n", "", "\x00k").Val(), int64(5))
	check("EXISTS emptied hash", r.Exists(ctx, "h").Val(), int64(0))

	// RENAME is a renew: the fields move, the old key is gone.
	r.HSet(ctx, "old", "user", "bob")
	check("RENAME", r.Rename(ctx, "old", "new").Val(), "OK")
	check("HGET renamed", r.HGet(ctx, "new", "user").Val(), "bob")
	check("EXISTS old", r.Exists(ctx, "old").Val(), int64(0))
	if err := r.Rename(ctx, "old", "x").Err(); err == nil || err.Error() != "ERR no such key" {
		t.Errorf("RENAME missing: %v", err)
	}
	r.Set(ctx, "other", "o", 0)
	check("RENAMENX onto existing", r.RenameNX(ctx, "new", "other").Val(), false)

	// Errors, as Redis words them.
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"nosuch", "a"}, "ERR unknown command 'nosuch', with args beginning with: 'a' "},
		{[]any{"get"}, "ERR wrong number of arguments for 'get' command"},
		{[]any{"hget", "other", "f"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"set", "k", "v", "ex", "0"}, "ERR invalid expire time in 'set' command"},
		{[]any{"set", "k", "v", "ex", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"set", "k", "v", "nx", "xx"}, "ERR syntax error"},
		{[]any{"select", "1"}, "ERR DB index is out of range"},
		{[]any{"hincrby", "new", "user", "1"}, "ERR hash value is not an integer"},
		{[]any{"auth", "pw"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]any{"hello", "4"}, "NOPROTO sorry, this protocol version is not supported."},
		{[]any{"exec"}, "ERR EXEC without MULTI"},
	} {
		err := r.Do(ctx, tc.args...).Err()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	check("SELECT 0", r.Do(ctx, "select", "0").Val(), "OK")
	// Without a password, the default user takes any (Redis's nopass).
	check("AUTH default x", r.Do(ctx, "auth", "default", "x").Val(), "OK")
	check("HELLO 2 AUTH default x", r.Do(ctx, "hello", "2", "auth", "default", "x").Err(), nil)
}

func toStrings(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if v == nil {
			out[i] = "<nil>"
		} else {
			out[i] = v.(string)
		}
	}
	return out
}

// MULTI/EXEC applies queued commands together; a command refused while
// queuing aborts the transaction.
func TestMultiExec(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	ctx := context.Background()
	r := f.client(t)
	cmds, err := r.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		p.HSet(ctx, "b", "f", "2")
		p.Get(ctx, "a")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cmds[2].(*redis.StringCmd).Val(); got != "1" {
		t.Errorf("GET inside EXEC = %q", got)
	}
	raw := dialRaw(t, f.addr)
	raw.cmd(t, "MULTI")
	raw.cmd(t, "SET", "c", "3")
	raw.cmd(t, "GET")
	raw.cmd(t, "EXEC")
	for _, want := range []string{"+OK", "+QUEUED", "-ERR wrong number of arguments for 'get' command", "-EXECABORT Transaction discarded because of previous errors."} {
		if got := raw.line(t); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if r.Exists(ctx, "c").Val() != 0 {
		t.Error("an aborted transaction was applied")
	}
}

// SCAN and KEYS list key names, with MATCH, COUNT and TYPE.
func TestScanKeys(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	ctx := context.Background()
	r := f.client(t)
	var want []string
	for i := range 50 {
		k := "sess:" + itoa(i)
		want = append(want, k)
		r.Set(ctx, k, "v", 0)
	}
	r.HSet(ctx, "h:1", "f", "v")
	var got []string
	iter := r.Scan(ctx, 0, "sess:*", 7).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("SCAN MATCH sess:* = %v", got)
	}
	keys, _, err := r.ScanType(ctx, 0, "*", 10000, "hash").Result()
	if err != nil || !slices.Equal(keys, []string{"h:1"}) {
		t.Errorf("SCAN TYPE hash = %v, %v", keys, err)
	}
	ks := r.Keys(ctx, "sess:[1-2]?").Val()
	slices.Sort(ks)
	if len(ks) != 20 || ks[0] != "sess:10" {
		t.Errorf("KEYS sess:[1-2]? = %v", ks)
	}
	if n := r.DBSize(ctx).Val(); n != 51 {
		t.Errorf("DBSIZE = %d, want 51", n)
	}
}

// A pipeline mixing keys, repeated keys and connection commands answers in
// order, each command seeing the ones before it on its key.
func TestPipelineOrder(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	ctx := context.Background()
	r := f.client(t)
	p := r.Pipeline()
	var gets []*redis.StringCmd
	for i := range 40 {
		k := "p:" + itoa(i%5)
		p.Set(ctx, k, itoa(i), 0)
		gets = append(gets, p.Get(ctx, k))
		if i == 20 {
			p.Ping(ctx)
			p.HSet(ctx, "p:h", "f", "1")
			p.HIncrBy(ctx, "p:h", "f", 2)
		}
	}
	incr := p.HIncrBy(ctx, "p:h", "f", 10)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, g := range gets {
		if g.Val() != itoa(i) {
			t.Fatalf("GET #%d in the pipeline = %q, want %q", i, g.Val(), itoa(i))
		}
	}
	if incr.Val() != 13 {
		t.Errorf("HINCRBY after the others = %d, want 13", incr.Val())
	}
	raw := dialRaw(t, f.addr)
	raw.send(t, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*3\r\n$3\r\nSET\r\n$4\r\nquit\r\n$1\r\nx\r\n")
	if got := raw.line(t) + raw.line(t); got != "+PONG+OK" {
		t.Errorf("PING QUIT: %q", got)
	}
	if r.Exists(ctx, "quit").Val() != 0 {
		t.Error("a command after QUIT ran")
	}
}

// HELLO 3 switches the connection to RESP3: nulls and maps change form,
// the rest is as RESP2; go-redis (which asks for RESP3 first) reads both.
func TestRESP3(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	ctx := context.Background()
	r := f.client(t, func(o *redis.Options) { o.Protocol = 3 })
	r.HSet(ctx, "h", "a", "1", "b", "2")
	if got := r.HGetAll(ctx, "h").Val(); !mapsEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("HGETALL over RESP3 = %v", got)
	}
	if err := r.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET missing over RESP3: %v", err)
	}
	raw := dialRaw(t, f.addr)
	raw.cmd(t, "HELLO", "3")
	if got := raw.line(t); got != "%7" {
		t.Fatalf("HELLO 3 reply starts %q, want a map of 7", got)
	}
	for range 25 { // 7 names and 7 values, most of them bulk strings
		raw.line(t)
	}
	raw.cmd(t, "GET", "missing")
	raw.cmd(t, "HGETALL", "h")
	raw.cmd(t, "RESET")
	raw.cmd(t, "GET", "missing")
	for _, want := range []string{"_", "%2", "$1", "a", "$1", "1", "$1", "b", "$1", "2", "+RESET", "$-1"} {
		if got := raw.line(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// frozenClock stands still between the calls of one test.
type frozenClock struct{ t time.Time }

func (c frozenClock) Now() time.Time { return c.t }

// frozenFront starts one node on a clock frozen 0.5 ms into a millisecond,
// with a front, and returns a client and the clock's time.
func frozenFront(t *testing.T) (*redis.Client, time.Time) {
	t.Helper()
	at := time.Now().Truncate(time.Millisecond).Add(500 * time.Microsecond)
	nodes := meshtest.Start(t, 1, func(_ int, cfg *node.Config) { cfg.Clock = frozenClock{at} })
	return serveFront(t, nodes[0], "127.0.0.1:0", nil).client(t), at
}

// A repeated expiry option of one kind takes the last value, as in Redis
// 7; two kinds are a syntax error.
func TestRepeatedExpiryOptionTakesTheLast(t *testing.T) {
	r, _ := frozenFront(t)
	ctx := context.Background()
	pttl := func(want time.Duration) {
		t.Helper()
		if got := r.PTTL(ctx, "k").Val(); got != want {
			t.Errorf("PTTL = %v, want %v", got, want)
		}
	}
	if err := r.Do(ctx, "SET", "k", "v", "EX", 1, "EX", 100).Err(); err != nil {
		t.Fatalf("SET EX 1 EX 100: %v", err)
	}
	pttl(100 * time.Second)
	if err := r.Do(ctx, "GETEX", "k", "PX", 5000, "px", 7000).Err(); err != nil {
		t.Fatalf("GETEX PX 5000 PX 7000: %v", err)
	}
	pttl(7 * time.Second)
	for _, args := range [][]any{
		{"SET", "k", "w", "EX", 1, "PX", 100},
		{"SET", "k", "w", "PX", 100, "KEEPTTL"},
		{"GETEX", "k", "EX", 1, "EXAT", 2000000000},
		{"GETEX", "k", "PX", 100, "PERSIST"},
	} {
		if err := r.Do(ctx, args...).Err(); err == nil || err.Error() != "ERR syntax error" {
			t.Errorf("%v: %v, want ERR syntax error", args, err)
		}
	}
	pttl(7 * time.Second)
}

// EXPIRE GT and LT compare deadlines in whole milliseconds, as Redis does:
// giving a key the deadline it already has, in the millisecond its expiry
// was set, neither raises nor lowers it, however far into that millisecond
// the clock is.
func TestExpireComparesWholeMilliseconds(t *testing.T) {
	r, at := frozenFront(t)
	ctx := context.Background()
	do := func(args ...any) int64 {
		t.Helper()
		n, err := r.Do(ctx, args...).Int64()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return n
	}
	if err := r.Set(ctx, "k", "v", 100*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []any
		want int64
	}{
		{[]any{"EXPIRE", "k", 100, "GT"}, 0},
		{[]any{"EXPIRE", "k", 100, "LT"}, 0},
		{[]any{"PEXPIRE", "k", 100_000, "GT"}, 0},
		{[]any{"PEXPIREAT", "k", at.Truncate(time.Millisecond).Add(100 * time.Second).UnixMilli(), "GT"}, 0},
		{[]any{"PEXPIRE", "k", 100_001, "GT"}, 1},
		{[]any{"PEXPIRE", "k", 100_001, "LT"}, 0},
		{[]any{"PEXPIRE", "k", 100_000, "LT"}, 1},
	} {
		if got := do(c.args...); got != c.want {
			t.Errorf("%v = %d, want %d", c.args, got, c.want)
		}
	}
	if got := r.PTTL(ctx, "k").Val(); got != 100*time.Second {
		t.Errorf("PTTL = %v, want 1m40s", got)
	}
	// EXPIRETIME and PEXPIRETIME give the deadline itself.
	deadline := at.Truncate(time.Millisecond).Add(100 * time.Second).UnixMilli()
	for _, c := range []struct {
		args []any
		want int64
	}{
		{[]any{"PEXPIRETIME", "k"}, deadline},
		{[]any{"EXPIRETIME", "k"}, (deadline + 500) / 1000},
		{[]any{"pexpiretime", "missing"}, -2},
		{[]any{"EXPIRETIME", "missing"}, -2},
		{[]any{"PEXPIREAT", "k", deadline + 1234}, 1},
		{[]any{"PEXPIRETIME", "k"}, deadline + 1234},
		{[]any{"PEXPIREAT", "k", deadline/1000*1000 + 1789}, 1},
		{[]any{"EXPIRETIME", "k"}, deadline/1000 + 2}, // 1.789 s past a second rounds up, as in Redis
	} {
		if got := do(c.args...); got != c.want {
			t.Errorf("%v = %d, want %d", c.args, got, c.want)
		}
	}
}

// A MULTI queue holds at most four requests' worth: the command that would
// pass it is refused, the queue is dropped (later commands are answered
// QUEUED and kept nowhere), EXEC discards the transaction, and the next
// transaction starts empty. Unbounded, one client queued 1.1 GB.
func TestMultiQueueBounded(t *testing.T) {
	f := startFronts(t, 1, func(cfg *redisfront.Config) { cfg.MaxRequestBytes = 1 << 10 })[0]
	raw := dialRaw(t, f.addr)
	raw.cmd(t, "MULTI")
	if got := raw.line(t); got != "+OK" {
		t.Fatalf("MULTI: %q", got)
	}
	value := strings.Repeat("v", 600)
	refused := 0
	for i := range 12 {
		raw.cmd(t, "SET", "k"+itoa(i), value)
		got := raw.line(t)
		switch {
		case got == "+QUEUED":
		case strings.HasPrefix(got, "-ERR MULTI queue over 4096 bytes"):
			refused++
			if i < 5 || refused > 1 {
				t.Fatalf("command %d: %q", i, got)
			}
		default:
			t.Fatalf("command %d: %q", i, got)
		}
	}
	if refused != 1 {
		t.Fatalf("%d commands refused, want 1", refused)
	}
	raw.cmd(t, "EXEC")
	if got := raw.line(t); got != "-EXECABORT Transaction discarded because of previous errors." {
		t.Fatalf("EXEC: %q", got)
	}
	r := f.client(t)
	if n := r.Exists(context.Background(), "k0", "k11").Val(); n != 0 {
		t.Fatalf("%d keys of a discarded transaction exist", n)
	}
	// The next transaction is not held to the last one's size.
	raw.cmd(t, "MULTI")
	raw.cmd(t, "SET", "k0", value)
	raw.cmd(t, "EXEC")
	for _, want := range []string{"+OK", "+QUEUED", "*1", "+OK"} {
		if got := raw.line(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// Writes over the mesh's size limits are refused in a Redis user's words:
// the node's own errors named the key's session and the internal fields a
// key maps to ("field \"\x00s\" value of 100000 bytes"). Values up to the
// limit are taken.
func TestSizeLimitsInRedisWords(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	ctx := context.Background()
	r := f.client(t)
	max := f.n.Limits().MaxValueBytes
	if err := r.Set(ctx, "fits", strings.Repeat("v", max), 0).Err(); err != nil {
		t.Fatalf("SET of %d bytes: %v", max, err)
	}
	for _, tc := range []struct {
		name string
		cmd  []any
		want string
	}{
		{"value", []any{"SET", "big", strings.Repeat("v", 100000)}, "ERR sessionmesh: over the mesh's size limit: value of 100000 bytes (max 65536)"},
		{"hash value", []any{"HSET", "h", "f", strings.Repeat("v", 70000)}, `ERR sessionmesh: over the mesh's size limit: value of hash field "f" of 70000 bytes (max 65536)`},
		{"field name", []any{"HSET", "h", strings.Repeat("f", 300), "v"}, "ERR sessionmesh: over the mesh's size limit: hash field name of 300 bytes (max 256)"},
		{"key name", []any{"SET", strings.Repeat("k", 70000), "v"}, "ERR sessionmesh: over the mesh's size limit: key name of 70000 bytes (max 65536)"},
		{"fields", append([]any{"HSET", "many"}, manyFields(300)...), "ERR sessionmesh: a hash holds at most 255 fields"},
		{"whole", []any{"HSET", "h", "a", strings.Repeat("v", 60000), "b", strings.Repeat("v", 60000), "c", strings.Repeat("v", 60000),
			"d", strings.Repeat("v", 60000), "e", strings.Repeat("v", 60000), "f", strings.Repeat("v", 60000), "g", strings.Repeat("v", 60000),
			"i", strings.Repeat("v", 60000), "j", strings.Repeat("v", 60000)}, "ERR sessionmesh: over the mesh's size limit: the key's data would take over 524288 bytes"},
	} {
		err := r.Do(ctx, tc.cmd...).Err()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if n := r.Exists(ctx, "big", "h", "many").Val(); n != 0 {
		t.Errorf("%d refused keys exist", n)
	}
}

func manyFields(n int) []any {
	var out []any
	for i := range n {
		out = append(out, "f"+itoa(i), "v")
	}
	return out
}
