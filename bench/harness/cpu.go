package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// processCPU returns the CPU time the threads of process pid have used
// (/proc/PID/task/*/schedstat, nanoseconds): what a load generator's
// round costs a server, whatever else shares the machine.
func processCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("cpu of process %d: no /proc/%d/task/*/schedstat", pid, pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu of process %d: %s: %w", pid, t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// daemonsCPU returns the CPU time the daemons have used, together.
func daemonsCPU(ds []*daemon) (time.Duration, error) {
	var sum time.Duration
	for _, d := range ds {
		c, err := processCPU(d.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// redisCPU returns the CPU time redis-server has used (INFO cpu: its
// getrusage, user plus system, all threads).
func redisCPU(ctx context.Context, c *redis.Client) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO cpu: %w", err)
	}
	var sec float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("redis INFO cpu: %s: %w", line, err)
			}
			sec += x
		}
	}
	return time.Duration(sec * float64(time.Second)), nil
}

// awaitQuiet waits, up to max, until the daemons are quiet: less than 10% of a
// core between them over 200 ms. A write round leaves work behind it (the
// replicas applying the last deltas, the store flushing and compacting its
// memtables, garbage collection) that would otherwise run during the next
// round, of either contender, and be counted against that round's
// command. Without /proc it returns at once.
func awaitQuiet(ctx context.Context, ds []*daemon, max time.Duration) {
	const window = 200 * time.Millisecond
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		before, err := daemonsCPU(ds)
		if err != nil {
			return
		}
		time.Sleep(window)
		after, err := daemonsCPU(ds)
		if err != nil || after-before < window/10 {
			return
		}
	}
}
