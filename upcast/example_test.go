package upcast_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/upcast"
)

// Example declares a type at schema version 3 with the steps from 1 and 2,
// and reads an event stored at version 1 in today's shape. The stored event
// is never rewritten: every read path runs it through the same registry.
func Example() {
	reg := upcast.NewRegistry()
	reg.Declare("OrderCreated", 3)
	// v2 added the currency, which was dollars until then.
	reg.Register("OrderCreated", 1, upcast.AddField("currency", "USD"))
	// v3 renamed "amount" to "total".
	reg.Register("OrderCreated", 2, func(data json.RawMessage) (json.RawMessage, error) {
		var v map[string]json.RawMessage
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		v["total"] = v["amount"]
		delete(v, "amount")
		return json.Marshal(v)
	})

	stored := chronicle.RecordedEvent{
		StreamID:      "order-ord_1",
		Version:       1,
		Type:          "OrderCreated",
		SchemaVersion: 1,
		Data:          json.RawMessage(`{"amount":5000,"customer_id":"cust_1"}`),
	}
	current, err := reg.Upcast(stored)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(current.SchemaVersion, string(current.Data))

	// A version the registry cannot bring up to date is an error naming
	// the event, never a guess.
	_, err = reg.Upcast(chronicle.RecordedEvent{StreamID: "order-ord_2", Version: 4, Type: "OrderCreated", SchemaVersion: 7, Data: json.RawMessage(`{}`)})
	fmt.Println(errors.Is(err, upcast.ErrUnknown), err)
	// Output:
	// 3 {"currency":"USD","customer_id":"cust_1","total":5000}
	// true upcast: stream "order-ord_2" version 4: event OrderCreated schema v7: schema version not in [1, 3]
}
