package pgstore

import (
	"context"
	"testing"

	"github.com/chronicle-es/chronicle/storetest"
)

func harness() storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, opts storetest.Options) storetest.Backend {
			return openTest(t, Options{Limits: opts.Limits, BeforeCommit: opts.BeforeCommit})
		},
		Exec: func(t *testing.T, b storetest.Backend, sql string) error {
			_, err := b.(*Store).pool.Exec(context.Background(), sql)
			return err
		},
		Truncate: true,
	}
}

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, harness())
}
