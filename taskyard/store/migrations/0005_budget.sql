-- taskyard schema, version 5: the month's spend is summed over the tasks whose agent started in it.
CREATE INDEX tasks_by_started ON tasks (started_at);
