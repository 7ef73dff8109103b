package daemon

import (
	"strings"
	"testing"
)

// --replicas, SESSIONMESH_REPLICAS and "replicas" in the file set partial
// replication; "all" (the default) is full replication.
func TestLoadReplicas(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "c.json", `{"replicas": "3"}`)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, 0},
		{"flag", []string{"--replicas", "2"}, nil, 2},
		{"flag all", []string{"--replicas=all"}, map[string]string{"SESSIONMESH_REPLICAS": "2"}, 0},
		{"env", nil, map[string]string{"SESSIONMESH_REPLICAS": "1"}, 1},
		{"file", nil, map[string]string{"SESSIONMESH_CONFIG": file}, 3},
		{"flag over file", []string{"--replicas", "2"}, map[string]string{"SESSIONMESH_CONFIG": file}, 2},
	} {
		cfg, err := Load(tc.args, env(tc.env))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.Replicas != tc.want {
			t.Errorf("%s: replicas %d, want %d", tc.name, cfg.Replicas, tc.want)
		}
	}
	for _, bad := range []string{"0", "-1", "two", ""} {
		_, err := Load([]string{"--replicas", bad}, env(nil))
		if err == nil || !strings.Contains(err.Error(), "replicas") {
			t.Errorf("--replicas %q: error %v, want one naming replicas", bad, err)
		}
	}
}
