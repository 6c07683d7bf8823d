//go:build race

package examples

// raceEnabled: this test binary runs under the race detector, so the
// example binaries are built with it too (and share its compiled packages).
const raceEnabled = true
