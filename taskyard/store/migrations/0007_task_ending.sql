-- taskyard schema, version 7: how a task ended (`taskyard.lifecycle.EndingKind`), its own
-- column; the reason stays human text and is no longer parsed. Tasks that ended before it
-- get the one kind that decides anything (a retry re-applies the actions of a task whose
-- actions failed) and "failed", "succeeded", … for the rest.
ALTER TABLE tasks ADD COLUMN ending TEXT;
UPDATE tasks SET ending = 'actions_failed' WHERE status = 'failed' AND reason LIKE 'actions:%';
UPDATE tasks SET ending = status
WHERE ending IS NULL AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled');
UPDATE tasks SET ending = 'approval_expired' WHERE ending IS NULL AND status = 'expired';
