package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/daemon"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Exit codes of the admin commands (status, peers, sync, backup, restore).
const (
	exitOK          = 0
	exitFailed      = 1 // the daemon refused or the operation failed
	exitUsage       = 2
	exitUnreachable = 3 // no daemon answered at the address
	exitAuth        = 4 // the daemon wants another API token
)

// EnvAddr gives the HTTP API address of the daemon to the admin commands.
const EnvAddr = daemon.EnvPrefix + "ADDR"

const adminUsage = `Usage:
  sessionmesh status [flags]              this peer, its members, its store
  sessionmesh peers [flags]               every known member and its state
  sessionmesh peers forget ID [flags]     forget a member now
  sessionmesh sync [PEER] [flags]         run an anti-entropy round now
  sessionmesh backup FILE [flags]         write a consistent snapshot of the store
  sessionmesh restore FILE --data-dir DIR restore a snapshot into an empty data dir (offline)

The first five talk to a running daemon's HTTP API. Flags:
  --addr HOST:PORT        the daemon's HTTP API (env SESSIONMESH_ADDR; else the
                          "http" of the config file, SESSIONMESH_HTTP, or
                          127.0.0.1:7480)
  --api-token-file FILE   the API bearer token, when the daemon wants one (env
                          SESSIONMESH_API_TOKEN_FILE, or the config file's)
  --config FILE           read the two above from this serve config file (env
                          SESSIONMESH_CONFIG)
  --json                  print the daemon's JSON answer, for scripts
  --timeout DURATION      bound on the request (default 30s; backup: none)

restore flags:
  --data-dir DIR              the new peer's data directory: absent or empty
  --encryption-key-file FILE  the key of an encrypted backup; the restored
                              store is encrypted with it

Exit codes: 0 ok, 1 failed (the daemon answered with an error, or the
operation failed), 2 usage, 3 daemon unreachable, 4 API token missing or wrong.
`

// adminClient talks to a daemon's HTTP API.
type adminClient struct {
	base   string
	bearer string
	http   *http.Client
	json   bool
}

// adminFlags declares the flags shared by the commands that talk to a
// daemon.
type adminFlags struct {
	addr, tokenFile, config string
	json                    bool
	timeout                 time.Duration
}

func newAdminFlagSet(name string, f *adminFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.addr, "addr", "", "")
	fs.StringVar(&f.tokenFile, "api-token-file", "", "")
	fs.StringVar(&f.config, "config", "", "")
	fs.BoolVar(&f.json, "json", false, "")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "")
	return fs
}

// parseInterspersed parses flags wherever they are among the arguments,
// so that `peers forget ID --json` works as well as `peers --json forget
// ID`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// client resolves where the daemon is and its token.
func (f *adminFlags) client(lookupEnv func(string) (string, bool)) (*adminClient, error) {
	cfg, err := daemon.LoadFileAndEnv(f.config, lookupEnv)
	if err != nil {
		return nil, err
	}
	addr := f.addr
	if addr == "" {
		addr, _ = lookupEnv(EnvAddr)
	}
	if addr == "" {
		addr = cfg.HTTPAddr
	}
	tokenFile := f.tokenFile
	if tokenFile == "" {
		tokenFile = cfg.APITokenFile
	}
	base, err := apiBase(addr)
	if err != nil {
		return nil, err
	}
	c := &adminClient{base: base, http: &http.Client{Timeout: f.timeout}, json: f.json}
	if tokenFile != "" {
		if c.bearer, err = daemon.ReadAPIToken(tokenFile, slog.New(slog.DiscardHandler)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// apiBase turns host:port or a URL into the API's base URL. A daemon
// listening on every interface (0.0.0.0, [::]) is reached on loopback.
func apiBase(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("address %q: want host:port or http(s)://host:port", addr)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", fmt.Errorf("address %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	u.Host = net.JoinHostPort(host, port)
	return strings.TrimSuffix(u.String(), "/"), nil
}

// apiFailure is an error with its exit code.
type apiFailure struct {
	code int
	err  error
}

func (e *apiFailure) Error() string { return e.err.Error() }

// do sends a request and returns the response, or an apiFailure: the
// daemon unreachable, a wrong token, or an error status with the
// daemon's message.
func (c *adminClient) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, &apiFailure{exitUsage, err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &apiFailure{exitUnreachable, fmt.Errorf("no daemon answered at %s: %w", c.base, err)}
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct{ Code, Message string }
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	code := exitFailed
	if resp.StatusCode == http.StatusUnauthorized {
		code = exitAuth
		if c.bearer == "" {
			msg += " (give the token with --api-token-file)"
		}
	}
	return nil, &apiFailure{code, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)}
}

// getJSON sends a request and decodes its JSON answer into dst, keeping
// the raw answer for --json.
func (c *adminClient) getJSON(ctx context.Context, method, path string, body, dst any) ([]byte, error) {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &apiFailure{exitUnreachable, fmt.Errorf("reading the answer: %w", err)}
	}
	if dst != nil {
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("the daemon's answer to %s %s: %w", method, path, err)
		}
	}
	return raw, nil
}

// fail prints err and returns its exit code.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "sessionmesh %s: %v\n", cmd, err)
	var af *apiFailure
	if errors.As(err, &af) {
		return af.code
	}
	return exitFailed
}

func usageError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "sessionmesh %s: %v\n\n%s", cmd, err, adminUsage)
	return exitUsage
}

// member is an entry of /v1/peers and /v1/status.
type member struct {
	ID                 string     `json:"id"`
	Addrs              []string   `json:"addrs"`
	Region             string     `json:"region"`
	Connected          bool       `json:"connected"`
	Since              *time.Time `json:"since"`
	LastSeen           *time.Time `json:"last_seen"`
	LastContactSeconds *float64   `json:"last_contact_seconds"`
	ClockOffsetSeconds *float64   `json:"clock_offset_seconds"`
	LastSync           *time.Time `json:"last_sync"`
	GossipMesh         bool       `json:"gossip_mesh"`
}

type self struct {
	ID     string   `json:"id"`
	Addrs  []string `json:"addrs"`
	Region string   `json:"region"`
}

type statusView struct {
	Self          self      `json:"self"`
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Ready         bool      `json:"ready"`
	NotReady      string    `json:"not_ready"`
	Members       struct {
		Known     int `json:"known"`
		Reachable int `json:"reachable"`
	} `json:"members"`
	Peers []member `json:"peers"`
	Store struct {
		Sessions   int    `json:"sessions"`
		DigestRoot string `json:"digest_root"`
		DiskBytes  int64  `json:"disk_bytes"`
		DataDir    string `json:"data_dir"`
		Durability string `json:"durability"`
		Encrypted  bool   `json:"encrypted"`
	} `json:"store"`
	Placement struct {
		Replicas          string `json:"replicas"`
		Slots             int    `json:"slots"`
		SlotsHeld         int    `json:"slots_held"`
		SlotsMoving       int    `json:"slots_moving"`
		RegionMembers     int    `json:"region_members"`
		SessionsHandedOff uint64 `json:"sessions_handed_off"`
		HandoffBytes      uint64 `json:"handoff_bytes"`
	} `json:"placement"`
}

// adminCommand runs one command that talks to a daemon: it parses the
// flags, builds the client and calls fn with the positional arguments.
func adminCommand(name string, args []string, stdout, stderr io.Writer, minArgs, maxArgs int,
	fn func(ctx context.Context, c *adminClient, args []string) error) int {
	var f adminFlags
	fs := newAdminFlagSet(name, &f)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, adminUsage)
		return exitOK
	}
	if err != nil {
		return usageError(stderr, name, err)
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		return usageError(stderr, name, fmt.Errorf("wrong number of arguments: %q", pos))
	}
	c, err := f.client(os.LookupEnv)
	if err != nil {
		return usageError(stderr, name, err)
	}
	if err := fn(context.Background(), c, pos); err != nil {
		return fail(stderr, name, err)
	}
	return exitOK
}

// status: sessionmesh status.
func status(args []string, stdout, stderr io.Writer) int {
	return adminCommand("status", args, stdout, stderr, 0, 0, func(ctx context.Context, c *adminClient, _ []string) error {
		var v statusView
		raw, err := c.getJSON(ctx, "GET", "/v1/status", nil, &v)
		if err != nil {
			return err
		}
		if c.json {
			_, err := stdout.Write(raw)
			return err
		}
		now := time.Now()
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "peer\t%s\n", v.Self.ID)
		if v.Self.Region != "" {
			fmt.Fprintf(tw, "region\t%s\n", v.Self.Region)
		}
		for _, a := range v.Self.Addrs {
			fmt.Fprintf(tw, "address\t%s\n", a)
		}
		fmt.Fprintf(tw, "version\t%s, up %s\n", v.Version, roundDuration(time.Duration(v.UptimeSeconds*float64(time.Second))))
		if v.Ready {
			fmt.Fprintf(tw, "ready\tyes\n")
		} else {
			fmt.Fprintf(tw, "ready\tNO: %s\n", v.NotReady)
		}
		fmt.Fprintf(tw, "members\t%d known, %d reachable\n", v.Members.Known, v.Members.Reachable)
		fmt.Fprintf(tw, "sessions\t%d (tombstones included)\n", v.Store.Sessions)
		fmt.Fprintf(tw, "digest root\t%s\n", v.Store.DigestRoot)
		fmt.Fprintf(tw, "disk use\t%s (the store, in data directory %s)\n", humanBytes(v.Store.DiskBytes), v.Store.DataDir)
		fmt.Fprintf(tw, "durability\t%s, encrypted at rest: %s\n", v.Store.Durability, yesNo(v.Store.Encrypted))
		if p := v.Placement; p.Replicas != "" && p.Replicas != "all" {
			fmt.Fprintf(tw, "replication\t%s per region, over %d peers here: %d of %d slots held, %d moving, %d sessions (%s) handed off\n",
				p.Replicas, p.RegionMembers, p.SlotsHeld, p.Slots, p.SlotsMoving, p.SessionsHandedOff, humanBytes(int64(p.HandoffBytes)))
		} else {
			fmt.Fprintf(tw, "replication\tfull (every peer holds every session)\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(v.Peers) > 0 {
			fmt.Fprintln(stdout)
			printMembers(stdout, v.Peers, now)
		}
		return nil
	})
}

// peers: sessionmesh peers, sessionmesh peers forget ID.
func peers(args []string, stdout, stderr io.Writer) int {
	return adminCommand("peers", args, stdout, stderr, 0, 2, func(ctx context.Context, c *adminClient, pos []string) error {
		switch {
		case len(pos) == 0:
			var v struct {
				Self  self     `json:"self"`
				Peers []member `json:"peers"`
			}
			raw, err := c.getJSON(ctx, "GET", "/v1/peers", nil, &v)
			if err != nil {
				return err
			}
			if c.json {
				_, err := stdout.Write(raw)
				return err
			}
			if len(v.Peers) == 0 {
				fmt.Fprintln(stdout, "no known member")
				return nil
			}
			printMembers(stdout, v.Peers, time.Now())
			return nil
		case pos[0] == "forget" && len(pos) == 2:
			resp, err := c.do(ctx, "DELETE", "/v1/peers/"+url.PathEscape(pos[1]), nil)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if c.json {
				return json.NewEncoder(stdout).Encode(map[string]string{"forgotten": pos[1]})
			}
			fmt.Fprintf(stdout, "forgot %s: no longer dialled or listed (it comes back if it connects or another member announces it)\n", pos[1])
			return nil
		}
		return &apiFailure{exitUsage, fmt.Errorf("want no argument or forget ID, got %q\n\n%s", pos, adminUsage)}
	})
}

func printMembers(w io.Writer, ms []member, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tREGION\tSTATE\tSINCE\tLAST CONTACT\tCLOCK OFFSET\tLAST SYNC\tADDRESS")
	for _, m := range ms {
		state := "reachable"
		if !m.Connected {
			state = "UNREACHABLE"
		}
		region := m.Region
		if region == "" {
			region = "-"
		}
		contact := "never"
		if m.LastContactSeconds != nil {
			contact = roundDuration(time.Duration(*m.LastContactSeconds*float64(time.Second))) + " ago"
		}
		offset := "-"
		if m.ClockOffsetSeconds != nil {
			offset = fmt.Sprintf("%+.3fs", *m.ClockOffsetSeconds)
		}
		addr := "-"
		if len(m.Addrs) > 0 {
			addr = m.Addrs[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, region, state, ago(m.Since, now), contact, offset, ago(m.LastSync, now), addr)
	}
	_ = tw.Flush()
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return roundDuration(now.Sub(*t)) + " ago"
}

func roundDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// syncCmd: sessionmesh sync [PEER].
func syncCmd(args []string, stdout, stderr io.Writer) int {
	return adminCommand("sync", args, stdout, stderr, 0, 1, func(ctx context.Context, c *adminClient, pos []string) error {
		var req struct {
			Peer string `json:"peer,omitempty"`
		}
		if len(pos) == 1 {
			req.Peer = pos[0]
		}
		var v struct {
			Peer            string  `json:"peer"`
			Result          string  `json:"result"`
			Reason          string  `json:"reason"`
			SessionsIn      int     `json:"sessions_in"`
			SessionsOut     int     `json:"sessions_out"`
			BytesIn         int64   `json:"bytes_in"`
			BytesOut        int64   `json:"bytes_out"`
			DurationSeconds float64 `json:"duration_seconds"`
		}
		raw, err := c.getJSON(ctx, "POST", "/v1/sync", req, &v)
		if err != nil {
			return err
		}
		if c.json {
			if _, err := stdout.Write(raw); err != nil {
				return err
			}
		} else {
			d := roundDuration(time.Duration(v.DurationSeconds * float64(time.Second)))
			switch v.Result {
			case string(node.SyncInSync):
				fmt.Fprintf(stdout, "in sync with %s: nothing to repair (%s)\n", v.Peer, d)
			case string(node.SyncRepaired):
				fmt.Fprintf(stdout, "repaired with %s in %s: %d sessions received (%s), %d sent (%s)\n",
					v.Peer, d, v.SessionsIn, humanBytes(v.BytesIn), v.SessionsOut, humanBytes(v.BytesOut))
			default:
				fmt.Fprintf(stdout, "round with %s %s after %s: %s (%d sessions received, %d sent)\n",
					v.Peer, v.Result, d, v.Reason, v.SessionsIn, v.SessionsOut)
			}
		}
		if v.Result == string(node.SyncFailed) {
			return &apiFailure{exitFailed, fmt.Errorf("the round with %s failed: %s", v.Peer, v.Reason)}
		}
		return nil
	})
}

// backup: sessionmesh backup FILE. The snapshot goes to FILE.partial
// first, renamed to FILE once the daemon has confirmed it complete.
func backup(args []string, stdout, stderr io.Writer) int {
	return adminCommand("backup", args, stdout, stderr, 1, 1, func(ctx context.Context, c *adminClient, pos []string) error {
		file := pos[0]
		if _, err := os.Lstat(file); err == nil {
			return fmt.Errorf("%s already exists: choose another name", file)
		}
		c.http.Timeout = 0 // a large store takes long; the user interrupts
		start := time.Now()
		resp, err := c.do(ctx, "GET", "/v1/backup", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		partial := file + ".partial"
		f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, resp.Body)
		if err == nil {
			if st := resp.Trailer.Get(daemon.BackupStatusTrailer); st != "ok" {
				if st == "" {
					st = "the daemon did not confirm the snapshot complete"
				}
				err = fmt.Errorf("backup incomplete: %s", st)
			}
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(partial, file)
		}
		if err != nil {
			os.Remove(partial)
			return err
		}
		if d, err := os.Open(filepath.Dir(file)); err == nil {
			_ = d.Sync()
			d.Close()
		}
		if c.json {
			return json.NewEncoder(stdout).Encode(map[string]any{"file": file, "bytes": n, "duration_seconds": time.Since(start).Seconds()})
		}
		fmt.Fprintf(stdout, "wrote %s: %s in %s\nrestore it with: sessionmesh restore %s --data-dir NEW_DIR (and --encryption-key-file KEY if the peer's store is encrypted)\n",
			file, humanBytes(n), roundDuration(time.Since(start)), file)
		return nil
	})
}

// restore: sessionmesh restore FILE --data-dir DIR, offline.
func restore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.String("data-dir", "", "")
	keyFile := fs.String("encryption-key-file", "", "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, adminUsage)
		return exitOK
	}
	if err != nil {
		return usageError(stderr, "restore", err)
	}
	if len(pos) != 1 || *dataDir == "" {
		return usageError(stderr, "restore", errors.New("want a backup FILE and --data-dir DIR"))
	}
	if entries, err := os.ReadDir(*dataDir); err == nil && len(entries) > 0 {
		return fail(stderr, "restore", fmt.Errorf("%s is not empty: restore only into a new, empty data directory", *dataDir))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(stderr, "restore", err)
	}
	o := persist.DefaultOptions(filepath.Join(*dataDir, node.StoreDir))
	o.Logger = slog.New(slog.DiscardHandler)
	if *keyFile != "" {
		if o.EncryptionKey, err = daemon.ReadEncryptionKey(*keyFile, o.Logger); err != nil {
			return fail(stderr, "restore", err)
		}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fail(stderr, "restore", err)
	}
	defer f.Close()
	_, statErr := os.Stat(*dataDir)
	info, err := persist.Restore(f, o)
	if err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(*dataDir) // made by the restore, empty again
		}
		return fail(stderr, "restore", err)
	}
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(map[string]any{
			"data_dir": *dataDir, "sessions": info.Sessions, "digest_root": fmt.Sprintf("%016x", info.Root),
			"snapshot_taken": info.Created, "encrypted": info.Encrypted,
		})
		return exitOK
	}
	fmt.Fprintf(stdout, "restored %d sessions (digest root %016x, snapshot taken %s) into %s\n",
		info.Sessions, info.Root, info.Created.Format(time.RFC3339), *dataDir)
	if info.Encrypted {
		fmt.Fprintf(stdout, "start it with: sessionmesh serve --data-dir %s --encryption-key-file %s ...\n", *dataDir, *keyFile)
	} else {
		fmt.Fprintf(stdout, "start it with: sessionmesh serve --data-dir %s ...\n", *dataDir)
	}
	fmt.Fprintln(stdout, "it starts as a new peer (new identity) holding the snapshot; the mesh fills in what came after.")
	return exitOK
}
