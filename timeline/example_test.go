package timeline_test

import (
	"encoding/json"
	"fmt"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/timeline"
)

func ExampleNew() {
	events := []chronicle.RecordedEvent{
		// Stored at schema v1, before orders had a currency and items.
		{StreamID: "order-ord_123", Version: 1, Type: "OrderCreated", SchemaVersion: 1, Data: json.RawMessage(`{"customer_id":"cust_456","total":9999}`)},
		{StreamID: "order-ord_123", Version: 2, Type: "PaymentReceived", SchemaVersion: 1, Data: json.RawMessage(`{"method":"card","amount":9999}`)},
	}
	tl := timeline.New("ord_123", events, order.NewRegistry())
	fmt.Print(tl.Text())
	fmt.Println(string(tl.Events[0].Data))
	// Output:
	// ord_123:
	//   v1 OrderCreated {customer: cust_456, total: $99.99}
	//   v2 PaymentReceived {method: card, amount: $99.99}
	// {"currency":"USD","customer_id":"cust_456","items":[],"total":9999}
}
