package transport

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

type arrival struct {
	seq uint64
	at  time.Time
}

// clock is a Handler that timestamps gossip arrivals.
type clock chan arrival

func (c clock) HandleGossip(_ peer.ID, data []byte) {
	c <- arrival{binary.BigEndian.Uint64(data), time.Now()}
}
func (c clock) HandleDirect(peer.ID, []byte) {}
func (c clock) PeerUp(peer.ID)               {}
func (c clock) PeerDown(peer.ID)             {}

// BenchmarkBroadcast3Hosts measures publish-to-delivery latency of a
// 256-byte message among 3 fully connected hosts on loopback TCP, one
// message at a time (the next is published once both others have it).
func BenchmarkBroadcast3Hosts(b *testing.B) {
	ctx := context.Background()
	arrivals := make(clock, 64)
	x := startTransport(b, testConfig(), clock(make(chan arrival, 1)))
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(x)
	y := startTransport(b, cfg, arrivals)
	cfg.Bootstrap = append(addrsOf(x), addrsOf(y)...)
	z := startTransport(b, cfg, arrivals)
	waitMesh(b, map[*Transport][]*Transport{x: {y, z}, y: {x, z}, z: {x, y}})

	payload := make([]byte, 256)
	lat := make([]time.Duration, 0, 2*b.N)
	timeout := time.NewTimer(time.Hour)
	b.ResetTimer()
	for i := range b.N {
		binary.BigEndian.PutUint64(payload, uint64(i))
		sent := time.Now()
		if err := x.Broadcast(ctx, payload); err != nil {
			b.Fatal(err)
		}
		timeout.Reset(5 * time.Second)
		for got := 0; got < 2; {
			select {
			case a := <-arrivals:
				if a.seq == uint64(i) {
					lat = append(lat, a.at.Sub(sent))
					got++
				}
			case <-timeout.C:
				b.Fatalf("message %d not delivered to both hosts within 5s", i)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
