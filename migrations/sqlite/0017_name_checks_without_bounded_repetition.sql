-- Nothing to change on SQLite: its name checks use GLOB, not a regex, and
-- at an UPDATE it evaluates only the checks that name a changed column, so
-- a claim or an outcome never re-checks `jobs.queue` (see
-- migrations/postgres/0017_name_checks_without_bounded_repetition.sql);
-- kept so that both backends number their migrations alike.
SELECT 1;
