package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Prefix is the path under which the console's assets are served; the page
// itself is served at "/".
const Prefix = "/console/"

// Handler serves the console: the page at "/" and its assets under
// Prefix. Every other path is 404, so mount it for exactly those two:
//
//	mux.Handle("GET /{$}", console.Handler())
//	mux.Handle("GET /console/", console.Handler())
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("console: embedded assets missing: " + err.Error()) // a build mistake
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Same-origin only: the page loads nothing from elsewhere, and
		// event data it displays can never run as script.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/" || r.URL.Path == "/index.html":
			http.ServeFileFS(w, r, sub, "index.html")
		case len(r.URL.Path) > len(Prefix) && r.URL.Path[:len(Prefix)] == Prefix:
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
