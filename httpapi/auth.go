package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// Token is a bearer secret and the role it grants.
type Token struct {
	Secret string
	Role   Role
}

// String hides the secret, so a token printed by mistake leaks nothing.
func (t Token) String() string { return "Token{role: " + t.Role.String() + "}" }

// ParseTokens parses the CHRONICLE_TOKENS form: "secret:role" pairs
// separated by commas ("s1:admin,s2:read"). Errors never quote a secret.
func ParseTokens(s string) ([]Token, error) {
	var out []Token
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, err := parseToken(part)
		if err != nil {
			return nil, fmt.Errorf("tokens: entry %d: %w", i+1, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// ReadTokens parses a tokens file: one "secret:role" a line; blank lines
// and lines starting with '#' are ignored. Errors never quote a secret.
func ReadTokens(r io.Reader) ([]Token, error) {
	var out []Token
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		t, err := parseToken(line)
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

func parseToken(s string) (Token, error) {
	// The role is after the last colon, so a secret may itself hold colons.
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Token{}, fmt.Errorf("want secret:role")
	}
	secret, roleName := strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
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
	return Token{Secret: secret, Role: role}, nil
}

// authenticator finds the role of a bearer secret. Secrets are kept as
// SHA-256 digests so that every comparison has the same length, and all of
// them are compared on every request, so timing says nothing about which
// token matched or how much of one did.
type authenticator struct {
	digests [][sha256.Size]byte
	roles   []Role
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{}
	for _, t := range tokens {
		a.digests = append(a.digests, sha256.Sum256([]byte(t.Secret)))
		a.roles = append(a.roles, t.Role)
	}
	return a
}

func (a *authenticator) enabled() bool { return len(a.digests) > 0 }

// role returns the best role granted by secret, or RoleNone.
func (a *authenticator) role(secret string) Role {
	d := sha256.Sum256([]byte(secret))
	best := RoleNone
	for i := range a.digests {
		eq := subtle.ConstantTimeCompare(d[:], a.digests[i][:])
		// Branch-free pick, so a match costs the same as a miss.
		r := subtle.ConstantTimeSelect(eq, int(a.roles[i]), 0)
		best = Role(max(int(best), r))
	}
	return best
}

// authorize checks the request's bearer token against need. It returns nil
// when auth is off, when need is RoleNone, or when the token's role is at
// least need; a 401 or 403 problem otherwise.
func (a *authenticator) authorize(r *http.Request, need Role) *apiError {
	if need == RoleNone || !a.enabled() {
		return nil
	}
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		e := newError(http.StatusUnauthorized, typeUnauthorized, "an Authorization: Bearer <token> header is required")
		e.header = http.Header{"Www-Authenticate": {`Bearer realm="chronicle"`}}
		return e
	}
	got := a.role(strings.TrimSpace(secret))
	if got == RoleNone {
		e := newError(http.StatusUnauthorized, typeUnauthorized, "the bearer token is not valid")
		e.header = http.Header{"Www-Authenticate": {`Bearer realm="chronicle", error="invalid_token"`}}
		return e
	}
	if got < need {
		return newError(http.StatusForbidden, typeForbidden,
			fmt.Sprintf("this route needs the %s role; the token has %s", need, got))
	}
	return nil
}
