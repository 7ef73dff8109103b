package netcut

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// LockFile is the machine-wide lock held while a Cutter is open, so that
// only one cut test runs at a time on a machine.
const LockFile = "/tmp/sessionmesh-netcut.lock"

// tagPrefix starts the comment of every rule; the process id follows.
const tagPrefix = "sessionmesh-test-"

// ErrUnavailable is wrapped by Available's error: not root, or no iptables.
var ErrUnavailable = errors.New("netcut: kernel cuts unavailable")

// ErrNotLoopback is returned for an address outside 127.0.0.0/8.
var ErrNotLoopback = errors.New("netcut: not a 127.0.0.0/8 address")

// iptablesPath finds iptables in PATH or in the sbin directories, which a
// non-login root shell may lack in PATH.
func iptablesPath() (string, error) {
	if p, err := exec.LookPath("iptables"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: iptables not found (apt-get install -y iptables)", ErrUnavailable)
}

// Available reports whether kernel cuts can be made here: running as root
// with a working iptables. The error says what is missing.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not running as root", ErrUnavailable)
	}
	p, err := iptablesPath()
	if err != nil {
		return err
	}
	if out, err := exec.Command(p, "-w", "-S", "INPUT").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: iptables -S INPUT: %v: %s", ErrUnavailable, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Require skips the test when kernel cuts are unavailable, with the
// reason, except when the environment variable CI is "true": there the
// test fails, because CI must run it.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%v (CI=true: cut tests must run; .ci/run installs iptables)", err)
		}
		tb.Skipf("%v", err)
	}
}

// loopback parses s as an IPv4 address in 127.0.0.0/8.
func loopback(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("netcut: address %q: %w", s, err)
	}
	if !a.Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(a) {
		return netip.Addr{}, fmt.Errorf("netcut: address %q: %w", s, ErrNotLoopback)
	}
	return a, nil
}

// rule is one DROP rule: packets from src to dst arriving on lo.
type rule struct{ src, dst netip.Addr }

// Cutter adds and removes the DROP rules of one process. Open it for the
// duration of the cuts (it holds the machine-wide lock) and Close it on
// every exit path; a SIGINT, SIGTERM or SIGHUP received while it is open
// removes the rules before the process dies of the signal. Its methods are
// safe for concurrent use.
type Cutter struct {
	ipt  string
	tag  string
	lock *os.File

	mu     sync.Mutex
	rules  []rule // in the order added
	closed bool

	sigs     chan os.Signal
	sigDone  chan struct{}
	stopOnce sync.Once
}

// Open checks Available, takes the machine-wide lock (waiting for another
// process's cut to finish), removes rules left behind by processes that
// died without cleaning up, and returns a Cutter.
func Open() (*Cutter, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ipt, _ := iptablesPath()
	f, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("netcut: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("netcut: lock %s: %w", LockFile, err)
	}
	c := &Cutter{
		ipt:     ipt,
		tag:     tagPrefix + strconv.Itoa(os.Getpid()),
		lock:    f,
		sigs:    make(chan os.Signal, 1),
		sigDone: make(chan struct{}),
	}
	c.removeStale()
	signal.Notify(c.sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go c.onSignal()
	return c, nil
}

// onSignal removes the rules when the process is told to stop, then lets
// the signal take its default course.
func (c *Cutter) onSignal() {
	select {
	case <-c.sigDone:
		return
	case sig := <-c.sigs:
		_ = c.Close()
		if s, ok := sig.(syscall.Signal); ok {
			_ = syscall.Kill(os.Getpid(), s)
		}
	}
}

var staleRE = regexp.MustCompile(`^-A INPUT .*--comment "?` + tagPrefix + `(\d+)"?`)

// removeStale deletes tagged rules of processes that no longer run. The
// lock is held, so no live process is in the middle of a cut except ours.
func (c *Cutter) removeStale() {
	out, err := exec.Command(c.ipt, "-w", "-S", "INPUT").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		m := staleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || processAlive(pid) {
			continue
		}
		args := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "-A "), `"`, ""))
		_ = exec.Command(c.ipt, append([]string{"-w", "-D"}, args...)...).Run()
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

func (c *Cutter) spec(r rule) []string {
	return []string{"INPUT", "-i", "lo", "-s", r.src.String(), "-d", r.dst.String(),
		"-m", "comment", "--comment", c.tag, "-j", "DROP"}
}

func (c *Cutter) run(op string, r rule) error {
	args := append([]string{"-w", op}, c.spec(r)...)
	if out, err := exec.Command(c.ipt, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("netcut: iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// add installs r unless it is in place already.
func (c *Cutter) add(r rule) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("netcut: cutter closed")
	}
	for _, x := range c.rules {
		if x == r {
			return nil
		}
	}
	if err := c.run("-I", r); err != nil {
		return err
	}
	c.rules = append(c.rules, r)
	return nil
}

// CutOneWay drops every packet from address from to address to (both in
// 127.0.0.0/8), whatever the protocol: TCP segments from `from` vanish,
// while to's packets still reach from.
func (c *Cutter) CutOneWay(from, to string) error {
	src, err := loopback(from)
	if err != nil {
		return err
	}
	dst, err := loopback(to)
	if err != nil {
		return err
	}
	if src == dst {
		return fmt.Errorf("netcut: cut %s from itself", src)
	}
	return c.add(rule{src, dst})
}

// Cut drops every packet between a and b, both directions.
func (c *Cutter) Cut(a, b string) error {
	if err := c.CutOneWay(a, b); err != nil {
		return err
	}
	return c.CutOneWay(b, a)
}

// Heal removes every rule this Cutter added. It keeps the lock: more cuts
// may follow.
func (c *Cutter) Heal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, r := range c.rules {
		if err := c.run("-D", r); err != nil {
			errs = append(errs, err)
		}
	}
	c.rules = nil
	return errors.Join(errs...)
}

// Rules returns the rules in place, as "src>dst" pairs, for logs.
func (c *Cutter) Rules() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.rules))
	for _, r := range c.rules {
		out = append(out, r.src.String()+">"+r.dst.String())
	}
	return out
}

// Close heals and releases the lock. Later calls return nil.
func (c *Cutter) Close() error {
	err := c.Heal()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return err
	}
	c.closed = true
	c.stopOnce.Do(func() {
		signal.Stop(c.sigs)
		close(c.sigDone)
	})
	_ = syscall.Flock(int(c.lock.Fd()), syscall.LOCK_UN)
	c.lock.Close()
	return err
}

// Test is a Cutter bound to a test: it is opened by New (after Require),
// closed by the test's Cleanup, and its methods fail the test on error.
type Test struct {
	tb testing.TB
	c  *Cutter
}

// New calls Require, opens a Cutter (waiting for the machine-wide lock),
// and closes it when the test ends.
func New(tb testing.TB) *Test {
	tb.Helper()
	Require(tb)
	c, err := Open()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("netcut: cleanup: %v", err)
		}
	})
	return &Test{tb: tb, c: c}
}

// Cut drops every packet between a and b (loopback addresses).
func (t *Test) Cut(a, b string) {
	t.tb.Helper()
	if err := t.c.Cut(a, b); err != nil {
		t.tb.Fatal(err)
	}
}

// CutOneWay drops every packet from from to to.
func (t *Test) CutOneWay(from, to string) {
	t.tb.Helper()
	if err := t.c.CutOneWay(from, to); err != nil {
		t.tb.Fatal(err)
	}
}

// Heal removes every rule added so far.
func (t *Test) Heal() {
	t.tb.Helper()
	if err := t.c.Heal(); err != nil {
		t.tb.Fatal(err)
	}
}

// Cutter returns the underlying Cutter.
func (t *Test) Cutter() *Cutter { return t.c }
