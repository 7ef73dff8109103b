// Package cputime reads the CPU time the process has used, for benchmarks
// that report cost per operation including the work of background
// goroutines (Badger's flushes and compactions, libp2p's readers), which
// wall time per operation hides on a machine with more than one core.
package cputime
