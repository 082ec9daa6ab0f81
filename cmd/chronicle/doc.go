// Command chronicle is the one binary of chronicle: the order service
// (serve), the debug timeline of an order (timeline), read-model operations
// (projections list|rebuild, verify), benchmarks (bench) and a demo history
// (demo). README.md and docs/ describe them; 'chronicle --help' lists the flags.
//
// The command line is Main.Run; main only maps its error to the exit
// status: 0 success, 1 failure, 2 usage error.
package main
