package persist

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// The crash test runs a writer in a child process (this test binary,
// dispatched by TestMain), kills it with SIGKILL mid-stream, reopens the
// store and checks that every write the child acknowledged is there.

const (
	crashDirEnv  = "SESSIONMESH_CRASH_DIR"
	crashModeEnv = "SESSIONMESH_CRASH_MODE"
	// crashKindEnv "versioned" makes the child write change-only deltas of
	// fields with their version entries (riders) instead of creates.
	crashKindEnv = "SESSIONMESH_CRASH_KIND"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		os.Exit(crashChild(dir, os.Getenv(crashModeEnv)))
	}
	os.Exit(m.Run())
}

// crashChild writes sessions from 4 goroutines until it is killed, printing
// "ack ID" once Apply has returned for ID.
func crashChild(dir, mode string) int {
	d, err := ParseDurability(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o := DefaultOptions(dir)
	o.Durability = d
	o.Logger = quietLogger()
	s, err := Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if os.Getenv(crashKindEnv) == "versioned" {
		return crashVersioned(s)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%06d", w, i)
				if _, err := s.Apply(crdt.NewBatch(newSession(id, crdt.NodeID(w+1), t0, 3)), t0); err != nil {
					fmt.Fprintln(os.Stderr, "apply:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s\n", id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

// crashVersioned writes, from 4 goroutines each on its own session (node
// w+1), change-only deltas of field f<i%8> = i stamped with the writer's
// version entry, printing "ack v<w> f<k> <i> <stamp time>" once Apply has
// returned.
func crashVersioned(s *Store) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c := crdt.NewClock(crdt.NodeID(w+1), 5*time.Second)
			id := fmt.Sprintf("v%d", w)
			ts := c.Now(t0)
			created := crdt.Create(id, ts, t0.Add(time.Hour), 30*time.Minute)
			if _, err := s.Apply(crdt.NewBatch(created), t0); err != nil {
				fmt.Fprintln(os.Stderr, "apply:", err)
				os.Exit(3)
			}
			for i := 0; ; i++ {
				ts := c.Now(t0)
				d := created.Header()
				k := fmt.Sprintf("f%d", i%8)
				vk, vf := crdt.VersionField(ts)
				d.Fields = d.Fields.With(k, crdt.Field{Value: fmt.Sprint(i), TS: ts}).With(vk, vf)
				if _, err := s.Apply(crdt.NewBatch(d), t0); err != nil {
					fmt.Fprintln(os.Stderr, "apply:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %s %d %d\n", id, k, i, ts.Time)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}

// TestCrashLosesNoAcknowledgedVersionedWrite: a versioned write's field
// and its version entry, one record since format 4, are both there after
// kill -9 once acknowledged.
func TestCrashLosesNoAcknowledgedVersionedWrite(t *testing.T) {
	t.Setenv(crashKindEnv, "versioned")
	for _, mode := range []Durability{DurabilitySync, DurabilityNone} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			acked := runAndKill(t, dir, mode, 1500)
			type slot struct{ id, key string }
			latest := map[slot]int{}
			stamps := map[string]uint64{}
			for _, a := range acked {
				var id, key string
				var i int
				var at uint64
				if _, err := fmt.Sscanf(a, "%s %s %d %d", &id, &key, &i, &at); err != nil {
					t.Fatalf("child printed %q: %v", a, err)
				}
				latest[slot{id, key}] = max(latest[slot{id, key}], i)
				stamps[id] = max(stamps[id], at)
			}
			s := openStore(t, testOptions(dir))
			for sl, i := range latest {
				got, err := s.Get(sl.id)
				if err != nil {
					t.Fatalf("session %s lost after kill -9: %v", sl.id, err)
				}
				v, ok := got.Get(sl.key)
				n := -1
				if ok {
					_, _ = fmt.Sscan(v, &n)
				}
				if n < i {
					t.Fatalf("%s %s: acknowledged write %d, read %q after kill -9", sl.id, sl.key, i, v)
				}
			}
			for id, at := range stamps {
				got := mustGet(t, s, id)
				node := crdt.NodeID(id[1]-'0') + 1
				e, ok := got.Fields.Get(crdt.VersionKey(node))
				if !ok || e.TS.Time < at {
					t.Fatalf("%s: version entry of node %d read as %v (%v) after kill -9, acknowledged stamp %d", id, node, e.TS, ok, at)
				}
			}
			t.Logf("%s: %d acknowledged versioned writes, all present after kill -9", mode, len(acked))
		})
	}
}

func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	for _, mode := range []Durability{DurabilitySync, DurabilityGroup, DurabilityNone} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			acked := runAndKill(t, dir, mode, 1500)
			s := openStore(t, testOptions(dir))
			for _, id := range acked {
				got, err := s.Get(id)
				if err != nil {
					t.Fatalf("acknowledged write %s lost after kill -9: %v", id, err)
				}
				if v, ok := got.Get("f02"); !ok || string(v) != "value-2-"+id {
					t.Fatalf("acknowledged write %s incomplete after kill -9: %q", id, v)
				}
			}
			t.Logf("%s: %d acknowledged writes, all present after kill -9", mode, len(acked))
		})
	}
}

// runAndKill starts the child writer, kills it with SIGKILL once it has
// acknowledged at least min writes, and returns every acknowledged id.
func runAndKill(t *testing.T, dir string, mode Durability, min int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		id, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			t.Fatalf("child printed %q", line)
		}
		acked = append(acked, id)
		if !killed && (len(acked) >= min || time.Now().After(deadline)) {
			// SIGKILL: no deferred code, no Close, no final fsync.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	// Lines already in the pipe when the child died were acknowledged too.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed: %v\n%s", err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed by a signal: %v\n%s", err, stderr.String())
	}
	if len(acked) < min {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	return acked
}
