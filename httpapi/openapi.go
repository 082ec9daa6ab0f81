package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes every route; TestOpenAPIMatchesRoutes keeps it and
// the mux in step.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
	return nil
}
