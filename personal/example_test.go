package personal_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/personal"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// Declare which fields of an event type are personal and whose they are,
// append through the encrypting store, reveal on the way out, erase.
func Example() {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	master, _ := personal.ParseMasterKey(personal.NewMasterKey()) // keep it outside the store
	keys, err := personal.NewKeyring(ctx, store, master)
	if err != nil {
		panic(err)
	}
	policy := personal.NewPolicy(personal.Rule{Type: "PatientRegistered", Fields: []string{"name"}, Subject: "patient_id"})
	s := personal.NewStore(store, keys, policy)
	_, err = s.Append(ctx, "patient-p1", chronicle.NoStream, []chronicle.Event{
		{Type: "PatientRegistered", Data: []byte(`{"patient_id":"p1","name":"Ada Lovelace","ward":"B"}`)},
	})
	if err != nil {
		panic(err)
	}
	evs, _ := store.ReadStream(ctx, "patient-p1", chronicle.ReadStreamOptions{})
	fmt.Println("stored with a token:", strings.Contains(string(evs[0].Data), personal.Prefix))
	out, _ := keys.Reveal(ctx, evs[0].Data, true)
	fmt.Println(string(out))
	if _, err := keys.Erase(ctx, "p1"); err != nil {
		panic(err)
	}
	out, _ = keys.Reveal(ctx, evs[0].Data, true)
	fmt.Println(string(out))
	// Output:
	// stored with a token: true
	// {"patient_id":"p1","name":"Ada Lovelace","ward":"B"}
	// {"patient_id":"p1","name":"[erased]","ward":"B"}
}
