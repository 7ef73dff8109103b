package netcut

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRefusesNonLoopback(t *testing.T) {
	for _, a := range []string{"10.0.0.1", "192.168.1.1", "::1", "0.0.0.0", "localhost", ""} {
		if _, err := loopback(a); err == nil {
			t.Errorf("loopback(%q) accepted", a)
		}
	}
	if _, err := loopback("8.8.8.8"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("loopback(8.8.8.8): %v, want ErrNotLoopback", err)
	}
	if _, err := loopback("127.0.10.2"); err != nil {
		t.Errorf("loopback(127.0.10.2): %v", err)
	}
}

// echo answers one byte with the same byte, on a connection between
// 127.0.10.250 and 127.0.10.251.
func echoPair(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.10.250:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.10.251")}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(c net.Conn, wait time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte{1}); err != nil {
		return err
	}
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	return err
}

func rulesOf(t *testing.T, c *Cutter) int {
	out, err := exec.Command(c.ipt, "-w", "-S", "INPUT").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), c.tag)
}

// A cut makes an open connection silent (no error, no data) and a heal
// lets the same connection carry data again; every rule is gone after
// Heal and after Close.
func TestCutAndHeal(t *testing.T) {
	cut := New(t)
	c := echoPair(t)
	if err := roundTrip(c, 2*time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}

	cut.Cut("127.0.10.250", "127.0.10.251")
	if n := rulesOf(t, cut.Cutter()); n != 2 {
		t.Fatalf("%d rules in place, want 2", n)
	}
	cut.Cut("127.0.10.251", "127.0.10.250") // same pair: no new rules
	if n := rulesOf(t, cut.Cutter()); n != 2 {
		t.Fatalf("%d rules in place after cutting again, want 2", n)
	}
	err := roundTrip(c, 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("during the cut: %v, want a timeout", err)
	}

	cut.Heal()
	if n := rulesOf(t, cut.Cutter()); n != 0 {
		t.Fatalf("%d rules left after Heal", n)
	}
	// The byte written during the cut is retransmitted, then ours.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	if err := roundTrip(c, 5*time.Second); err != nil {
		t.Fatalf("after the heal: %v", err)
	}

	cut.CutOneWay("127.0.10.251", "127.0.10.250")
	if got := cut.Cutter().Rules(); len(got) != 1 || got[0] != "127.0.10.251>127.0.10.250" {
		t.Fatalf("rules %v", got)
	}
	if err := cut.Cutter().Cut("127.0.10.2", "10.0.0.1"); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Cut to 10.0.0.1: %v, want ErrNotLoopback", err)
	}
	cc := cut.Cutter()
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rulesOf(t, cc); n != 0 {
		t.Fatalf("%d rules left after Close", n)
	}
	if err := cc.CutOneWay("127.0.10.2", "127.0.10.3"); err == nil {
		t.Fatal("cut after Close accepted")
	}
}

// Rules left by a process that died (kill -9, a test timeout) are removed
// by the next Open.
func TestStaleRulesRemoved(t *testing.T) {
	cut := New(t)
	c := cut.Cutter()
	dead := 4_000_000 + os.Getpid()%100_000 // above Linux's pid_max: never running
	if processAlive(dead) {
		t.Skipf("pid %d exists", dead)
	}
	tag := tagPrefix + strconv.Itoa(dead)
	spec := []string{"INPUT", "-i", "lo", "-s", "127.0.10.252", "-d", "127.0.10.253", "-m", "comment", "--comment", tag, "-j", "DROP"}
	if out, err := exec.Command(c.ipt, append([]string{"-w", "-I"}, spec...)...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(c.ipt, append([]string{"-w", "-D"}, spec...)...).Run() })
	c.removeStale()
	out, err := exec.Command(c.ipt, "-w", "-S", "INPUT").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), tag) {
		t.Errorf("stale rule %s still in place", tag)
	}
}
