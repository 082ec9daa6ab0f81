-- Samples, every 2 ms for about 10 s, what chronicle's committer backends
-- are doing (the connections whose statement inserts into streams): running
-- on a CPU, waiting for the WAL flush (IO:WALSync), for another backend's
-- WAL write (LWLock:WALWrite), or idle for the next batch (Client:ClientRead).
-- Run it with psql while `chronicle bench --workload W1 --clients 32` runs.
CREATE TEMP TABLE waits (what text);
DO $$
BEGIN
	FOR i IN 1..5000 LOOP
		PERFORM pg_stat_clear_snapshot();
		INSERT INTO waits
		SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, 'running')
		FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
			AND query LIKE '%INSERT INTO streams%';
		PERFORM pg_sleep(0.002);
	END LOOP;
END $$;
SELECT what, count(*) AS samples, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM waits GROUP BY what ORDER BY samples DESC;
