package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chronicle-es/chronicle/internal/storeurl"
)

// Main is the chronicle command line. main() only maps the error of Run to
// an exit status; tests run Main in-process with their own streams and
// environment.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// IsTerminal reports whether w is a terminal (progress bars). Nil: never.
	IsTerminal func(w io.Writer) bool
	// Ready, when set, is called by serve with the address it listens on,
	// once it accepts connections. Tests use it instead of polling.
	Ready func(addr string)
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Errorf(format, a...)}
}

// exitCode maps Run's error to the exit status: 0 ok, 2 usage, 1 otherwise.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// Run runs the command line args (without the program name). ctx ends
// long-running commands: serve shuts down gracefully when it is cancelled.
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	stdout, stderr := m.Stdout, m.Stderr
	defer func() { m.Stdout, m.Stderr = stdout, stderr }()
	var secrets []string
	root := m.rootCommand()
	// Once the flags are parsed, the store URL's passwords are masked in
	// all the command prints, whoever formats it (a driver's error may
	// quote its connection string).
	root.PersistentPreRun = func(c *cobra.Command, args []string) {
		secrets = storeurl.Secrets(m.storeURL(c))
		for _, name := range []string{"from", "to"} { // chronicle copy's URLs
			if f := c.Flags().Lookup(name); f != nil {
				secrets = append(secrets, storeurl.Secrets(f.Value.String())...)
			}
		}
		// Longest first, so that masking one never leaves part of another.
		slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
		if len(secrets) > 0 {
			m.Stdout = &maskingWriter{w: m.Stdout, secrets: secrets}
			m.Stderr = &maskingWriter{w: m.Stderr, secrets: secrets}
		}
	}
	root.SetArgs(args)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.SetIn(m.Stdin)
	_, err := root.ExecuteContextC(ctx)
	if err != nil && isCobraUsage(err) {
		err = &usageError{err}
	}
	if err != nil && len(secrets) > 0 {
		err = &maskedError{err: err, secrets: secrets}
	}
	return err
}

// maskingWriter masks secrets in what it writes. Each log record and
// message is one Write, so a secret is never split between two.
type maskingWriter struct {
	w       io.Writer
	secrets []string
}

func (mw *maskingWriter) Write(p []byte) (int, error) {
	s := string(p)
	for _, secret := range mw.secrets {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	if _, err := io.WriteString(mw.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

// maskedError is err with secrets masked in its message.
type maskedError struct {
	err     error
	secrets []string
}

func (e *maskedError) Error() string {
	s := e.err.Error()
	for _, secret := range e.secrets {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	return s
}

func (e *maskedError) Unwrap() error { return e.err }

// isCobraUsage recognises the argument errors cobra makes itself (flags are
// mapped by SetFlagErrorFunc, positional arguments by usageArgs).
func isCobraUsage(err error) bool {
	var ue *usageError
	if errors.As(err, &ue) {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag") || strings.Contains(s, "flag needs an argument")
}

func (m *Main) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "chronicle",
		Short: "chronicle: an event store and the order service built on it",
		Long: `chronicle is an event store, an event-sourcing toolkit and an order service.

Every change to an order is an immutable event; an order's state is a fold of
its events, and read models are projections of the global log.

The store is chosen by --store, else $CHRONICLE_STORE, else the SQLite file
./chronicle-data/chronicle.db (created on first use). Store URLs:

  sqlite:///abs/path/file.db     SQLite file (sqlite://rel/path.db is relative)
  sqlite::memory:                private in-memory SQLite (gone on exit)
  postgres://user:pass@host:5432/db?sslmode=disable
                                 PostgreSQL; add schema=NAME to pick a schema

Exit status: 0 success, 1 failure, 2 usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%s%w", cmdPrefix(c), err)}
	})
	root.PersistentFlags().String("store", "", "store URL (default $CHRONICLE_STORE, else sqlite at ./chronicle-data/chronicle.db)")
	root.PersistentFlags().String("master-key", "", "file of the master key of personal data (default $"+envMasterKey+", else master.key beside a SQLite store)")
	root.AddCommand(
		m.serveCommand(),
		m.relayCommand(),
		m.timelineCommand(),
		m.projectionsCommand(),
		m.verifyCommand(),
		m.auditCommand(),
		m.benchCommand(),
		m.demoCommand(),
		m.keygenCommand(),
		m.eraseCommand(),
		m.copyCommand(),
	)
	return root
}

// groupRunE is the RunE of commands that only group subcommands: without a
// known subcommand the command line is wrong.
func groupRunE(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		c.SetOut(c.ErrOrStderr())
		_ = c.Help()
		return usagef("%smissing command", cmdPrefix(c))
	}
	return usagef("%sunknown command %q", cmdPrefix(c), args[0])
}

// cmdPrefix is "timeline: " for chronicle timeline, "" for chronicle itself:
// errors are printed after "chronicle: " already.
func cmdPrefix(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") + ": "
}

// usageArgs makes positional-argument errors usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return &usageError{fmt.Errorf("%s%w", cmdPrefix(c), err)}
		}
		return nil
	}
}

// storeURL is --store, else $CHRONICLE_STORE, else "" (the default file).
func (m *Main) storeURL(c *cobra.Command) string {
	if u, _ := c.Flags().GetString("store"); u != "" {
		return u
	}
	return m.Getenv(storeurl.Env)
}

func (m *Main) isTerminal(w io.Writer) bool {
	return m.IsTerminal != nil && m.IsTerminal(w)
}
