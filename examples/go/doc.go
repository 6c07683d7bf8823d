// Package examples holds the Go example of ckring and its end-to-end test:
// agent (the executor loop, in the seed's shape), executor (the executor
// process) and host (its boot-recovery host). story_test.go runs the
// recovery story with the real ckring-flusher: an executor SIGKILLed
// mid-run, another shut down mid-run, and a host that recovers and
// finishes their runs. try.sh (make go-example) tells the same story.
package examples
