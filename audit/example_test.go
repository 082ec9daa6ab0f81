package audit_test

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/chronicle-es/chronicle/audit"
)

func Example() {
	// Hash a stream's first event, as it was stored.
	h, err := audit.HashEvent(audit.Event{
		PrevHash:      audit.ZeroHash,
		StreamID:      "order-o1",
		Version:       1,
		EventID:       "0190d1a2-0000-7000-8000-000000000001",
		Type:          "OrderCreated",
		SchemaVersion: 1,
		RecordedAt:    time.Date(2026, 12, 3, 11, 0, 0, 160000000, time.UTC),
		Data:          json.RawMessage(`{"customer_id":"cé1","items":[{"sku":"s","quantity":1,"unit_price":101}],"total":101,"note":"tab\there \"q\""}`),
		Metadata:      json.RawMessage(`{"request_id":"r1","actor":"alice"}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("hash:", h)

	// The Merkle root of a seal covering that one event.
	fmt.Println("root:", audit.MerkleRoot([]audit.Hash{h}))

	// Check exported bundles offline.
	for _, file := range []string{"audit-bundle.json", "audit-bundle-tampered.json"} {
		b, err := os.ReadFile("testdata/vectors/" + file)
		if err != nil {
			panic(err)
		}
		bundle, err := audit.DecodeBundle(b)
		if err != nil {
			panic(err)
		}
		if err := audit.Check(bundle, audit.Options{}); err != nil {
			fmt.Println(file+":", err)
			continue
		}
		fmt.Println(file + ": ok")
	}
	// Output:
	// hash: a17671dbbe2c2adf6973e0b06d843273b704fb625362eea4b870da71924abc49
	// root: 635f0b826b74aec9ee640834dcd0e54c7af36ed1b5a29d5048f69e5a33c496bf
	// audit-bundle.json: ok
	// audit-bundle-tampered.json: audit: position 8 (order-o3 v2): hash does not match the event's contents (recomputed b30deb30716534ad1439832c7f56e7a84582b9df0791385a87a199d464aca47c)
}
