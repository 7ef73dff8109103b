// Package netcut cuts loopback traffic between two addresses at the
// kernel, for tests and benchmarks of real partitions: packets vanish and
// sockets stay open and silent, as in a real network cut, unlike an
// in-process Block that closes connections politely.
//
// Each peer of a cut test listens on its own loopback address (127.0.10.2,
// 127.0.10.3, ...; TCP only, since libp2p's TCP transport dials out from
// its listen address, every connection between two peers runs between
// their two addresses). A cut is then a pair of iptables rules on INPUT -i
// lo matching the exact address pair (one rule for a one-way cut), tagged
// with the comment sessionmesh-test-<pid>.
//
// Rules of the house, enforced here: only 127.0.0.0/8 addresses are
// accepted; one Cutter at a time per machine (a flock on LockFile, held
// while it is open, so cut tests of different packages and helpers run one
// after the other); every rule added is removed by Heal or Close, by a
// test's Cleanup (New), and on SIGINT/SIGTERM/SIGHUP; rules left by a
// process that died (kill -9, a test timeout) are removed by the next Open.
//
// Usage in a test:
//
//	cut := netcut.New(t) // skips without root/iptables, fails when CI=true
//	cut.Cut("127.0.10.2", "127.0.10.3")
//	...
//	cut.Heal()
//
// Programs (the bench) use Open, Cutter.Cut, Cutter.Heal and Cutter.Close.
package netcut
