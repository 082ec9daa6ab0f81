package personal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
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
// new key) when it does not exist; created says which.
func CreateMasterKey(path string) (key []byte, created bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		key, err = ReadMasterKey(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	enc := NewMasterKey()
	if _, err := f.Write(enc); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("create master key: %w", err)
	}
	key, err = ParseMasterKey(enc)
	return key, true, err
}
