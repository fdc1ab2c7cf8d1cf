package elastiqtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// ProcStatus reads a size field of /proc/<pid>/status (VmRSS, VmHWM,
// VmSize...) in bytes; pid 0 is this process. The kernel's own figures: a
// process's resident memory, and its peak.
func ProcStatus(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("%s %s: %q: %v", path, field, v, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("%s has no %s", path, field)
	return 0
}
