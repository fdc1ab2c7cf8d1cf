package main

import "testing"

// TestRoleWebIsNotWorker: the web instance's role must differ from the
// workers', so that the scaler can never stop or terminate it.
func TestRoleWebIsNotWorker(t *testing.T) {
	if roleWeb == roleWorker {
		t.Errorf("roleWeb = %q = roleWorker: the scaler could act on the web instance", roleWeb)
	}
}
