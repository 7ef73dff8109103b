package daemon

import "github.com/sessionmesh/sessionmesh/metrics"

// Namespace prefixes every metric the daemon exports: the node's (package
// metrics, which embedders use too) and the daemon's own collectors.
const Namespace = metrics.Namespace
