package inturn

import (
	"errors"
	"slices"
	"testing"
)

func TestRunRotatesAndCountsMeasuredRounds(t *testing.T) {
	var order []string
	form := func(name string) Form {
		return Form{Name: name, Prepare: func() func() error {
			return func() error { order = append(order, name); return nil }
		}}
	}
	totals, err := Run(1, 2, []Form{form("a"), form("b"), form("c")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c", "b", "c", "a", "c", "a", "b"}
	if !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if len(totals) != 3 {
		t.Fatalf("%d totals, want 3", len(totals))
	}
}

func TestRunStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	runs := 0
	_, err := Run(0, 5, []Form{{Name: "bad", Prepare: func() func() error {
		return func() error { runs++; return boom }
	}}})
	if !errors.Is(err, boom) || err.Error() != "bad: boom" || runs != 1 {
		t.Errorf("err %v after %d runs, want bad: boom after 1", err, runs)
	}
}
