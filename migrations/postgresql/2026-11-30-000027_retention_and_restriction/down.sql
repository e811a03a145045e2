DROP INDEX restrictions_in_force;
DROP TABLE restrictions;
DROP TABLE retention_runs;
DROP TABLE retention_policies;
