package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// Role is what a token may do. Roles are ordered: each includes the ones
// below it.
type Role int

// The roles of API.md.
const (
	// RoleNone is no access; open routes need it.
	RoleNone Role = iota
	// RoleRead may query.
	RoleRead
	// RoleWrite may query and run commands.
	RoleWrite
	// RoleAdmin may do everything, including rebuilding read models.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "read", "write" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "write":
		return RoleWrite, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want read, write or admin)", s)
}

// Token is a bearer secret, the role it grants and the name of its holder,
// which events appended with it record as their actor.
type Token struct {
	Name   string
	Secret string
	Role   Role
}

// String hides the secret, so a token printed by mistake leaks nothing.
func (t Token) String() string { return "Token{name: " + t.Name + ", role: " + t.Role.String() + "}" }

// TokenName is the name of a token configured without one: "token-" and
// the first 8 hex digits of SHA-256(secret), stable across restarts and
// useless for guessing the secret.
func TokenName(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return "token-" + hex.EncodeToString(d[:4])
}

// ParseTokens parses the CHRONICLE_TOKENS form: entries separated by
// commas, each "secret:role" or "name:secret:role"
// ("ops:s1:admin,s2:read"). Errors name the entry by its index and never
// quote a secret.
func ParseTokens(s string) ([]Token, error) {
	var out []Token
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, err := parseToken(part)
		if err == nil {
			err = checkUnique(out, t)
		}
		if err != nil {
			return nil, fmt.Errorf("tokens: entry %d: %w", i+1, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// ReadTokens parses a tokens file: one "secret:role" or "name:secret:role"
// a line; blank lines and lines starting with '#' are ignored. Errors name
// the line and never quote a secret.
func ReadTokens(r io.Reader) ([]Token, error) {
	var out []Token
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		t, err := parseToken(line)
		if err == nil {
			err = checkUnique(out, t)
		}
		if err != nil {
			return nil, fmt.Errorf("tokens file: line %d: %w", n, err)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	return out, nil
}

// parseToken parses "secret:role" or "name:secret:role". The role is after
// the last colon; with two colons or more, what precedes the first is the
// name and the secret is what lies between (so it may hold colons).
func parseToken(s string) (Token, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Token{}, fmt.Errorf("want secret:role or name:secret:role")
	}
	secret, roleName := strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
	name := ""
	if j := strings.IndexByte(secret, ':'); j >= 0 {
		name, secret = secret[:j], strings.TrimSpace(secret[j+1:])
		// A malformed entry may have the secret where the name goes: say
		// what is wrong without quoting it.
		if !validTokenName(name) {
			return Token{}, errors.New("the name (before the first colon) must be 1 to 64 of a-z, 0-9, '.', '_', '-'")
		}
	}
	if secret == "" {
		return Token{}, fmt.Errorf("empty secret")
	}
	for _, c := range []byte(secret) {
		if c <= ' ' || c == 0x7f {
			return Token{}, fmt.Errorf("secret contains a space or control character")
		}
	}
	// Which part of a malformed entry is the secret is unknown (a swapped
	// "admin:secret" puts it where the role goes): quote no part of it.
	role, err := ParseRole(roleName)
	if err != nil {
		return Token{}, errors.New("unknown role (want read, write or admin after the last colon)")
	}
	if name == "" {
		name = TokenName(secret)
	}
	return Token{Name: name, Secret: secret, Role: role}, nil
}

// checkUnique refuses a second token with t's name, which would make two
// holders one actor, or with t's secret. Names are not secret: events
// record them.
func checkUnique(tokens []Token, t Token) error {
	for _, o := range tokens {
		if o.Name == t.Name {
			return fmt.Errorf("the name %s is already taken", t.Name)
		}
		if subtle.ConstantTimeCompare([]byte(o.Secret), []byte(t.Secret)) == 1 {
			return fmt.Errorf("the same secret as the token named %s", o.Name)
		}
	}
	return nil
}

// validTokenName reports whether s is a token name: 1 to 64 of a-z, 0-9,
// '.', '_' and '-'.
func validTokenName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// authenticator finds the holder and role of a bearer token: one of the
// configured secrets, or a JWT when an identity provider is configured.
// Secrets are kept as SHA-256 digests so that every comparison has the
// same length, and all of them are compared on every request, so timing
// says nothing about which token matched or how much of one did.
type authenticator struct {
	digests [][sha256.Size]byte
	names   []string
	roles   []Role
	jwt     *jwtVerifier // nil: no identity provider
	log     *slog.Logger
}

func newAuthenticator(tokens []Token, jwt *jwtVerifier, log *slog.Logger) *authenticator {
	a := &authenticator{jwt: jwt, log: log}
	for _, t := range tokens {
		a.digests = append(a.digests, sha256.Sum256([]byte(t.Secret)))
		a.names = append(a.names, t.Name)
		a.roles = append(a.roles, t.Role)
	}
	return a
}

func (a *authenticator) enabled() bool { return len(a.digests) > 0 || a.jwt != nil }

// token returns the name and role of the configured token secret, or
// RoleNone.
func (a *authenticator) token(secret string) (string, Role) {
	d := sha256.Sum256([]byte(secret))
	match := -1
	for i := range a.digests {
		eq := subtle.ConstantTimeCompare(d[:], a.digests[i][:])
		// Branch-free pick, so a match costs the same as a miss. Secrets
		// are unique (ParseTokens), so at most one matches.
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return "", RoleNone
	}
	return a.names[match], a.roles[match]
}

// reserved reports whether a JWT's subject would name an actor that is
// already someone else's: a configured token's, or that of requests made
// with auth off.
func (a *authenticator) reserved(sub string) bool {
	return sub == anonymous || slices.Contains(a.names, sub)
}

// authorize checks the request's bearer token against need and returns
// its holder's name (the actor of what the request appends). It returns
// "" and nil when auth is off or need is RoleNone, the holder when the
// token's role is at least need, and a 401 or 403 problem otherwise (400
// for two Authorization headers).
func (a *authenticator) authorize(r *http.Request, need Role) (string, *apiError) {
	if need != RoleNone && len(r.Header.Values("Authorization")) > 1 { // which one would a proxy check?
		return "", badField("Authorization", "given more than once")
	}
	if need == RoleNone || !a.enabled() {
		return "", nil
	}
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		e := newError(http.StatusUnauthorized, typeUnauthorized, "an Authorization: Bearer <token> header is required")
		e.header = http.Header{"Www-Authenticate": {`Bearer realm="chronicle"`}}
		return "", e
	}
	name, got := a.token(secret)
	if got == RoleNone && a.jwt != nil && strings.Count(secret, ".") == 2 {
		var err error
		if name, got, err = a.jwt.verify(secret); err == nil && a.reserved(name) {
			name, got, err = "", RoleNone, fmt.Errorf("sub %q is the name of a configured token or %q: the audit trail could not tell their events apart", name, anonymous)
		}
		if err != nil {
			// The reason helps whoever set up the identity provider; the
			// client learns only that the token is not valid.
			a.log.LogAttrs(r.Context(), slog.LevelInfo, "bearer JWT refused",
				slog.String("request_id", requestID(r.Context())), slog.String("reason", err.Error()))
		}
	}
	if got == RoleNone {
		e := newError(http.StatusUnauthorized, typeUnauthorized, "the bearer token is not valid")
		e.header = http.Header{"Www-Authenticate": {`Bearer realm="chronicle", error="invalid_token"`}}
		return "", e
	}
	if got < need {
		return "", newError(http.StatusForbidden, typeForbidden,
			fmt.Sprintf("this route needs the %s role; the token has %s", need, got))
	}
	return name, nil
}
