package main

import (
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
)

// The standard session of every measurement: 10 fields of 90-byte values,
// about 1 KiB with the keys, the shape the Redis figure was taken
// with.
const (
	sessionFields = 10
	valueBytes    = 90
)

var fieldKeys = func() []string {
	ks := make([]string, sessionFields)
	for i := range ks {
		ks[i] = fmt.Sprintf("field%d", i)
	}
	return ks
}()

// sessionData returns the fields of session number seq, distinct per
// session and field.
func sessionData(seq int) map[string][]byte {
	m := make(map[string][]byte, sessionFields)
	for i, k := range fieldKeys {
		m[k] = valueFor(seq, i)
	}
	return m
}

// valueFor is a 90-byte printable value drawn from a generator seeded with
// (a, b): the same for the same pair, and as incompressible as random
// base64, so that no store's compression flatters it.
func valueFor(a, b int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	r := rand.New(rand.NewPCG(uint64(a), uint64(b)))
	v := make([]byte, valueBytes)
	for i := 0; i < len(v); i += 10 {
		x := r.Uint64()
		for j := i; j < min(i+10, len(v)); j++ {
			v[j] = alphabet[x&63]
			x >>= 6
		}
	}
	return v
}

// redisArgs flattens fields for HSET, in key order.
func redisArgs(m map[string][]byte) []any {
	out := make([]any, 0, 2*len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k, m[k])
	}
	return out
}

// stringFields is m with string values, for JSON bodies.
func stringFields(m map[string][]byte) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// redisToken draws a token the way a Redis-backed service would: 256 bits
// in base64url, drawn by the client.
func redisToken() string {
	var b [32]byte
	_, _ = crand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func redisKey(token string) string { return "session:" + token }
