-- taskyard schema, version 6: statistics (`/api/stats`) read the tasks that ended in a window.
CREATE INDEX tasks_by_finished ON tasks (finished_at);
