// Package elastiqtest holds test doubles and helpers shared by the tests of
// several elastiq packages: a fake clock, a log sink that tests can read, a
// map-backed elastiq.ObjectStore, polling and run-until-cancelled helpers,
// and the way to the test servers of scripts/test-servers.sh (moto_server and
// memcached) for the tests of packages and programs outside this module.
//
// Everything here is for tests only. The doubles are deliberately simple and
// safe for concurrent use; a behaviour only one package's tests rely on stays
// in that package's own test files.
package elastiqtest

import "time"

// Timeout bounds every wait of the helpers in this package. It is a deadline
// for something that should happen soon, generous enough for a loaded
// machine, never a speed assertion.
const Timeout = 30 * time.Second
