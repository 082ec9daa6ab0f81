package personal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// NewMasterKey returns a new master key (32 random bytes) encoded as its
// key file holds it: base64 and a newline.
func NewMasterKey() []byte {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
}

// ReadMasterKey reads a master key file: 32 bytes, base64.
func ReadMasterKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key: %w", err)
	}
	return ParseMasterKey(b)
}

// ParseMasterKey decodes a master key file's content.
func ParseMasterKey(b []byte) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != 32 {
		return nil, errors.New("master key: want 32 bytes in base64 (make one with: chronicle keygen > master.key)")
	}
	return raw, nil
}

// CreateMasterKey reads the key file at path, creating it (mode 0600, a
// new key) when it does not exist; created says which. Processes creating
// it at once agree on one key: it appears whole, or not at all.
func CreateMasterKey(path string) (key []byte, created bool, err error) {
	if key, err := ReadMasterKey(path); !errors.Is(err, os.ErrNotExist) {
		return key, false, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".master.key-*")
	if err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	defer os.Remove(f.Name())
	enc := NewMasterKey()
	_, err = f.Write(enc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600)
	}
	if err == nil {
		// Link, unlike rename, fails when another process got there first.
		err = os.Link(f.Name(), path)
	}
	if errors.Is(err, os.ErrExist) {
		key, err = ReadMasterKey(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	key, err = ParseMasterKey(enc)
	return key, true, err
}
