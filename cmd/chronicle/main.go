package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
)

func main() {
	// SIGINT and SIGTERM cancel the context: serve then shuts down
	// gracefully, other commands stop at their next check.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling: a second Ctrl-C
	// during a slow shutdown kills the process.
	go func() { <-ctx.Done(); stop() }()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, IsTerminal: isTerminal}
	err := m.Run(ctx, os.Args[1:])
	stop()
	code := exitCode(err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chronicle:", err)
		if code == 2 {
			fmt.Fprintln(os.Stderr, "Run 'chronicle --help' for usage.")
		}
	}
	os.Exit(code)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
