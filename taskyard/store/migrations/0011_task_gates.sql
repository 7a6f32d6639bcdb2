-- taskyard schema, version 11: a change task's gates (`taskyard.lifecycle.Gate`): the gate it
-- is in, and the record of every gate it passed or failed (JSON list, oldest first); and the
-- parent of a subtask.
ALTER TABLE tasks ADD COLUMN gate TEXT;
ALTER TABLE tasks ADD COLUMN gates TEXT;
ALTER TABLE tasks ADD COLUMN parent_id TEXT;
CREATE INDEX tasks_by_parent ON tasks (parent_id);
