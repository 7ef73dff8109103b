package main

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procs tracks the processes the harness starts. Each pid is also appended
// to a file that bench/run's trap reads, so that they are stopped even if
// the harness itself is killed.
type procs struct {
	mu      sync.Mutex
	pidFile string
	running map[*exec.Cmd]chan struct{}
}

func newProcs(pidFile string) *procs {
	return &procs{pidFile: pidFile, running: map[*exec.Cmd]chan struct{}{}}
}

func (p *procs) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[cmd] = make(chan struct{})
	if p.pidFile != "" {
		f, err := os.OpenFile(p.pidFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, cmd.Process.Pid)
			f.Close()
		}
	}
	return nil
}

// done records that cmd was waited for.
func (p *procs) done(cmd *exec.Cmd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.running[cmd]; ok {
		close(ch)
		delete(p.running, cmd)
	}
}

// exited returns a channel closed once cmd has been waited for.
func (p *procs) exited(cmd *exec.Cmd) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.running[cmd]; ok {
		return ch
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// stop asks cmd to stop with SIGTERM and kills it after grace. Its waiter
// (whoever called cmd.Wait) must call done.
func (p *procs) stop(cmd *exec.Cmd, grace time.Duration) {
	ch := p.exited(cmd)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-ch
	}
}

// stopAll stops every process still running.
func (p *procs) stopAll() {
	p.mu.Lock()
	var cmds []*exec.Cmd
	for c := range p.running {
		cmds = append(cmds, c)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(c, 10*time.Second)
		}()
	}
	wg.Wait()
}
