package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestTagsMatchFleet reads the tag constants of services/elastiq/ec2fleet
// from its source (this module does not import the services modules) and
// checks that the copies in tags.go are the same strings.
func TestTagsMatchFleet(t *testing.T) {
	path := filepath.Join("..", "services", "elastiq", "ec2fleet", "ec2fleet.go")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the fleet's tags: %v", err)
	}
	tests := []struct {
		name  string
		fleet string // the constant's name in ec2fleet.go
		ours  string
	}{
		{name: "role key", fleet: "TagRole", ours: tagRole},
		{name: "stack key", fleet: "TagStack", ours: tagStack},
		{name: "worker role", fleet: "RoleWorker", ours: roleWorker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := regexp.MustCompile(`(?m)^\s*` + tt.fleet + `\s*=\s*"([^"]*)"`)
			m := re.FindSubmatch(src)
			if m == nil {
				t.Fatalf("%s: no constant %s = \"...\"", path, tt.fleet)
			}
			if got := string(m[1]); got != tt.ours {
				t.Errorf("ec2fleet.%s = %q, infra has %q", tt.fleet, got, tt.ours)
			}
		})
	}
	if roleWeb == roleWorker {
		t.Errorf("roleWeb = %q = roleWorker: the scaler could act on the web instance", roleWeb)
	}
}
