package audit_test

import (
	"errors"
	"os"
	"testing"

	"github.com/chronicle-es/chronicle/audit"
)

func readBundle(t *testing.T, path string) *audit.Bundle {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := audit.DecodeBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	return bundle
}

func TestVectorBundleChecks(t *testing.T) {
	b := readBundle(t, "testdata/vectors/audit-bundle.json")
	if err := audit.Check(b, audit.Options{}); err != nil {
		t.Fatalf("Check(good vector) = %v, want nil", err)
	}
}

func TestVectorTamperedBundleFails(t *testing.T) {
	b := readBundle(t, "testdata/vectors/audit-bundle-tampered.json")
	err := audit.Check(b, audit.Options{})
	var ie *audit.IntegrityError
	if !errors.As(err, &ie) || !errors.Is(err, audit.ErrIntegrity) {
		t.Fatalf("Check(tampered vector) = %v, want an *IntegrityError", err)
	}
	if ie.Position != 8 || ie.StreamID != "order-o3" || ie.Version != 2 {
		t.Errorf("Check(tampered vector) names position %d %s v%d, want position 8 order-o3 v2 (%v)", ie.Position, ie.StreamID, ie.Version, err)
	}
}
