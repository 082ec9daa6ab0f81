package httpapi

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes fails when the mux has a route the document
// lacks, or the document one the mux lacks, or when they disagree on the
// role a route needs, on its path parameters, or on the query parameters
// a GET route takes (it refuses any other).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	type operation struct {
		Security []map[string][]string `json:"security"`
		Params   []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
		Responses map[string]json.RawMessage `json:"responses"`
	}
	documented := map[string]operation{}
	for path, item := range doc.Paths {
		var shared []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		}
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			op.Params = append(op.Params, shared...)
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}

	srv := newFakeServer(t, Options{})
	pathParam := regexp.MustCompile(`\{([a-z_]+)(\.\.\.)?\}`)
	var registered []string
	for _, rt := range srv.routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.ReplaceAll(path, "{$}", "")
		path = pathParam.ReplaceAllString(path, "{$1}")
		key := method + " " + path
		registered = append(registered, key)
		op, ok := documented[key]
		if !ok {
			t.Errorf("route %q (%s) is not in openapi.json", rt.pattern, key)
			continue
		}
		if len(op.Responses) == 0 {
			t.Errorf("%s: no responses documented", key)
		}
		var scopes []string
		for _, s := range op.Security {
			scopes = append(scopes, s["bearer"]...)
		}
		want := []string{}
		if rt.role != RoleNone {
			want = []string{rt.role.String()}
		}
		if !slices.Equal(scopes, want) && !(len(scopes) == 0 && len(want) == 0) {
			t.Errorf("%s: documented role %v, route needs %v", key, scopes, want)
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			if !slices.ContainsFunc(op.Params, func(p struct {
				Name string `json:"name"`
				In   string `json:"in"`
			}) bool {
				return p.Name == m[1] && p.In == "path"
			}) {
				t.Errorf("%s: path parameter %s not documented", key, m[1])
			}
		}
		if rt.strictQuery {
			var query []string
			for _, p := range op.Params {
				if p.In == "query" {
					query = append(query, p.Name)
				}
			}
			slices.Sort(query)
			want := slices.Sorted(slices.Values(rt.query))
			if !slices.Equal(query, want) {
				t.Errorf("%s: documented query parameters %v, route takes %v", key, query, want)
			}
		}
	}
	for key := range documented {
		if !slices.Contains(registered, key) {
			t.Errorf("openapi.json documents %s, which no route serves", key)
		}
	}
}

// TestOpenAPIMatchesBodies fails when the document and the server disagree
// on a command body: a property the document requires that the server
// takes as optional, or the other way round, or an integer's minimum.
// Whether a body is accepted is read as "not 400" (a 409 is about the
// order's state, not the body).
func TestOpenAPIMatchesBodies(t *testing.T) {
	type schema struct {
		Ref        string             `json:"$ref"`
		Required   []string           `json:"required"`
		Properties map[string]*schema `json:"properties"`
		Minimum    *int64             `json:"minimum"`
	}
	var doc struct {
		Components struct{ Schemas map[string]*schema }
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	resolve := func(s *schema) *schema {
		for s.Ref != "" {
			s = doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
		}
		return s
	}
	sample := map[string]any{"method": "card", "amount": 2000, "carrier": "ups", "tracking": "1Z", "signed_by": "J. Smith",
		"reason": "changed mind", "sku": "SKU-9", "quantity": 1, "unit_price": 1, "customer_id": "c", "currency": "USD",
		"items": []any{}, "total": 0}
	e := newEnv(t, reopeners()[0].open(t)())
	e.create("oa")
	for _, c := range []struct{ schema, path string }{
		{"CreateOrder", "/orders"}, {"AddItem", "/orders/oa/items"}, {"Payment", "/orders/oa/payments"},
		{"Shipment", "/orders/oa/shipments"}, {"Delivery", "/orders/oa/delivery"}, {"Cancellation", "/orders/oa/cancellation"},
	} {
		s := resolve(doc.Components.Schemas[c.schema])
		body := func(drop string, set map[string]any) string {
			m := map[string]any{}
			for name := range s.Properties {
				if v, ok := sample[name]; ok && name != drop {
					m[name] = v
				}
			}
			for k, v := range set {
				m[k] = v
			}
			b, _ := json.Marshal(m)
			return string(b)
		}
		accepted := func(b string) bool {
			return e.do(req{method: "POST", path: c.path, body: b}).status != 400
		}
		for name, p := range s.Properties {
			if _, ok := sample[name]; !ok {
				continue // order_id: a fresh one each time is the server's
			}
			if got, want := accepted(body(name, nil)), !slices.Contains(s.Required, name); got != want {
				t.Errorf("%s without %s: accepted %v, but the document says required %v", c.schema, name, got, !want)
			}
			if min := resolve(p).Minimum; min != nil {
				if !accepted(body("", map[string]any{name: *min})) || accepted(body("", map[string]any{name: *min - 1})) {
					t.Errorf("%s.%s: the server's minimum is not the document's %d", c.schema, name, *min)
				}
			}
		}
	}
}
