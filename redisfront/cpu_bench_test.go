package redisfront

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tidwall/redcon"
)

// BenchmarkCommandCPU measures the CPU one command costs the front and
// the node, network left out (bench/run measures it with the network):
// the command is served as a connection would, into a reply buffer, on a
// node of its own.
func BenchmarkCommandCPU(b *testing.B) {
	n, _ := lone(b)
	srv, err := New(n, Config{})
	if err != nil {
		b.Fatal(err)
	}
	const keys = 1000
	c := &client{authed: true}
	out := &bufConn{wr: redcon.NewWriter(nil)}
	serve := func(args ...string) {
		bs := make([][]byte, len(args))
		for i, a := range args {
			bs[i] = []byte(a)
		}
		out.wr.SetBuffer(out.wr.Buffer()[:0])
		srv.serveOne(c, out, bs)
	}
	for i := range keys {
		k := fmt.Sprintf("%012d", i)
		serve("SET", "key:"+k, `{"user":"alice","cart":3}`, "EX", "1800")
		serve("HSET", "hash:"+k, "creationTime", "1764547200000", "sessionAttr:user", "alice")
	}
	for _, op := range [][]string{{"GET", "key:"}, {"HGETALL", "hash:"}, {"SET", "key:"}, {"HSET", "hash:"}} {
		b.Run(op[0], func(b *testing.B) {
			args := make([][][]byte, keys)
			for i := range keys {
				k := []byte(op[1] + fmt.Sprintf("%012d", i))
				switch op[0] {
				case "SET":
					args[i] = [][]byte{[]byte("SET"), k, []byte(`{"user":"bob"}`), []byte("EX"), []byte("1800")}
				case "HSET":
					args[i] = [][]byte{[]byte("HSET"), k, []byte("lastAccessedTime"), []byte(strconv.Itoa(i))}
				default:
					args[i] = [][]byte{[]byte(op[0]), k}
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				out.wr.SetBuffer(out.wr.Buffer()[:0])
				srv.serveOne(c, out, args[i%keys])
				i++
			}
			if c.errs != 0 || out.errs != 0 {
				b.Fatalf("%d error replies: %s", c.errs+out.errs, out.wr.Buffer())
			}
		})
	}
	// Reads pipelined by 16, as redis-benchmark -P 16 sends them: the time
	// is per command.
	for _, op := range [][]string{{"GET", "key:"}, {"HGETALL", "hash:"}} {
		b.Run(op[0]+"/P16", func(b *testing.B) {
			const pipe = 16
			batches := make([][][][]byte, keys/pipe)
			for i := range batches {
				for j := range pipe {
					k := []byte(op[1] + fmt.Sprintf("%012d", i*pipe+j))
					batches[i] = append(batches[i], [][]byte{[]byte(op[0]), k})
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				out.wr.SetBuffer(out.wr.Buffer()[:0])
				srv.serveSequence(c, out, batches[i%len(batches)])
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pipe), "ns/cmd")
			if c.errs != 0 || out.errs != 0 {
				b.Fatalf("%d error replies: %s", c.errs+out.errs, out.wr.Buffer())
			}
		})
	}
}

// BenchmarkSetParallel runs SETs of existing keys from 16 goroutines, as
// 16 connections would: writes that wait together share commits, so the
// time per write falls below BenchmarkCommandCPU/SET's unless something
// serialises them.
func BenchmarkSetParallel(b *testing.B) {
	n, _ := lone(b)
	srv, err := New(n, Config{})
	if err != nil {
		b.Fatal(err)
	}
	const keys = 10_000
	key := func(i int64) []byte { return []byte("key:" + strconv.FormatInt(i%keys, 10)) }
	value := []byte(`{"user":"bob"}`)
	c := &client{authed: true}
	out := &bufConn{wr: redcon.NewWriter(nil)}
	for i := range int64(keys) {
		srv.serveOne(c, out, [][]byte{[]byte("SET"), key(i), value})
	}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := &client{authed: true}
		out := &bufConn{wr: redcon.NewWriter(nil)}
		for pb.Next() {
			out.wr.SetBuffer(out.wr.Buffer()[:0])
			srv.serveOne(c, out, [][]byte{[]byte("SET"), key(seq.Add(1)), value, []byte("EX"), []byte("1800")})
		}
		if c.errs != 0 || out.errs != 0 {
			b.Errorf("error replies: %s", out.wr.Buffer())
		}
	})
}
