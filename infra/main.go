// Command infra is the Pulumi program that stands up elastiq on AWS.
//
// It is a placeholder until the Pulumi issue lands: it only says so. The
// embedded stack (`make run`) needs no AWS at all.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "infra: the Pulumi program is not written yet; run the embedded stack with `make run`")
	os.Exit(1)
}
