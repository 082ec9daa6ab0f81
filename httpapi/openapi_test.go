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
