package sessionhttp

import (
	"context"
	"time"
)

// The typed getters return the zero value of their type when the key is
// missing or holds a value of another type, as scs's do. Pop variants
// remove the key as well.

// GetString returns the string value of key.
func (m *Manager) GetString(ctx context.Context, key string) string {
	return as[string](m.Get(ctx, key))
}

// GetBool returns the bool value of key.
func (m *Manager) GetBool(ctx context.Context, key string) bool { return as[bool](m.Get(ctx, key)) }

// GetInt returns the int value of key.
func (m *Manager) GetInt(ctx context.Context, key string) int { return as[int](m.Get(ctx, key)) }

// GetInt64 returns the int64 value of key.
func (m *Manager) GetInt64(ctx context.Context, key string) int64 { return as[int64](m.Get(ctx, key)) }

// GetInt32 returns the int32 value of key.
func (m *Manager) GetInt32(ctx context.Context, key string) int32 { return as[int32](m.Get(ctx, key)) }

// GetFloat returns the float64 value of key.
func (m *Manager) GetFloat(ctx context.Context, key string) float64 {
	return as[float64](m.Get(ctx, key))
}

// GetBytes returns the []byte value of key.
func (m *Manager) GetBytes(ctx context.Context, key string) []byte {
	return as[[]byte](m.Get(ctx, key))
}

// GetTime returns the time.Time value of key.
func (m *Manager) GetTime(ctx context.Context, key string) time.Time {
	return as[time.Time](m.Get(ctx, key))
}

// PopString returns the string value of key and removes it.
func (m *Manager) PopString(ctx context.Context, key string) string {
	return as[string](m.Pop(ctx, key))
}

// PopBool returns the bool value of key and removes it.
func (m *Manager) PopBool(ctx context.Context, key string) bool { return as[bool](m.Pop(ctx, key)) }

// PopInt returns the int value of key and removes it.
func (m *Manager) PopInt(ctx context.Context, key string) int { return as[int](m.Pop(ctx, key)) }

// PopFloat returns the float64 value of key and removes it.
func (m *Manager) PopFloat(ctx context.Context, key string) float64 {
	return as[float64](m.Pop(ctx, key))
}

// PopBytes returns the []byte value of key and removes it.
func (m *Manager) PopBytes(ctx context.Context, key string) []byte {
	return as[[]byte](m.Pop(ctx, key))
}

// PopTime returns the time.Time value of key and removes it.
func (m *Manager) PopTime(ctx context.Context, key string) time.Time {
	return as[time.Time](m.Pop(ctx, key))
}

func as[T any](v any) T {
	x, _ := v.(T)
	return x
}
