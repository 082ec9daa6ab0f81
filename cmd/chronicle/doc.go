// Command chronicle is the one binary of chronicle: the order service
// (serve), the debug timeline of an order (timeline), read-model operations
// (projections list|rebuild, verify), benchmarks (bench) and a demo history
// (demo). See ../shared/API.md for the contract and 'chronicle --help'.
//
// The command line is Main.Run; main only maps its error to the exit
// status: 0 success, 1 failure, 2 usage error.
package main
