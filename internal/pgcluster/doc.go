// Package pgcluster runs throwaway PostgreSQL clusters for tests: a primary
// in a temporary directory on a free loopback port, and streaming-replication
// standbys of it (pg_basebackup -R), which a test may stop, start, pause and
// kill without touching any shared server. As root the clusters run as the
// postgres user (initdb refuses root).
package pgcluster
