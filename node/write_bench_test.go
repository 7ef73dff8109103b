package node

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sessionmesh/sessionmesh/persist"
)

// BenchmarkNodeSet is the writer's side of bench/run's write row without
// the network: Set of one 90-byte field on a node with no peers (its
// broadcasts go nowhere), 50 writers at once, each on its own stretch of
// 1024 sessions of 8 fields, in memory and on disk (durability none). Its
// ns/op and allocations are the local write path's own: the Core, the
// node's locks and queues, the store's group commit.
func BenchmarkNodeSet(b *testing.B) {
	for _, store := range []string{"memory", "disk"} {
		b.Run("store="+store, func(b *testing.B) {
			net := newMemNet()
			cfg := testConfig()
			cfg.Dial = net.dialer("bench")
			if store == "disk" {
				cfg.DataDir = b.TempDir()
				cfg.Durability = persist.DurabilityNone
			}
			n, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close(context.Background())
			ctx := context.Background()
			fields := map[string][]byte{}
			for i := range 8 {
				fields[fmt.Sprintf("field%d", i)] = bytes.Repeat([]byte("x"), 90)
			}
			const pool = 1024
			tokens := make([]string, pool)
			for i := range tokens {
				if tokens[i], err = n.Create(ctx, WithFields(fields)); err != nil {
					b.Fatal(err)
				}
			}
			value := bytes.Repeat([]byte("v"), 90)
			var writer atomic.Int64
			b.SetParallelism(25) // 50 writers on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := int(writer.Add(1))
				key := fmt.Sprintf("w%d", w)
				for i := 0; pb.Next(); i++ {
					if err := n.Set(ctx, tokens[(w*(pool/50)+i)%pool], key, value); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
