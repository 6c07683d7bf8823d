package store_test

import (
	"context"
	"log"

	"ckring.dev/ckring"
	"ckring.dev/ckring/store"
)

// A host's boot path: recover every interrupted run through the executor
// that runs new ones (it finds the resume state and the reopened record in
// its context).
func ExampleRecover() {
	st, err := store.Open("/var/lib/ckring", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	c, err := ckring.Attach("jobs", &ckring.ClientOptions{BeginCheck: st.BeginCheck})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Detach()
	runExecutor := func(ctx context.Context, id string) error { return nil } // the executor
	rep, err := store.Recover(context.Background(), st, c, func(ctx context.Context, rec *store.Recovered) error {
		return runExecutor(ctx, rec.Info.ID)
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("recovered %v; another host took %v; exhausted %v; failed %v",
		rep.Dispatched, rep.Lost, rep.Exhausted, rep.Failed)
}
