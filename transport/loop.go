package transport

import (
	"context"
	"time"
)

// runLoop runs fn every interval and, delay after a send on signal, until
// ctx ends. Sends made while a run is pending (signal has capacity 1 and is
// sent to without blocking) coalesce into that run. A nil signal means
// ticks only. Once ctx ends fn does not run again: Close does the last
// round of whatever must happen at the end.
func runLoop(ctx context.Context, interval time.Duration, signal <-chan struct{}, delay time.Duration, fn func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-signal:
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
		fn()
	}
}
