-- taskyard schema, version 8: why an action was skipped (`taskyard.records.SkipKind`), its own
-- column; the reason stays human text and is no longer parsed. Older skipped actions get the
-- kind their reason's words gave.
ALTER TABLE actions ADD COLUMN skipped_as TEXT;
UPDATE actions SET skipped_as = 'already_applied'
WHERE status = 'skipped' AND reason LIKE 'already applied%';
UPDATE actions SET skipped_as = 'invalid' WHERE status = 'skipped'
AND (reason LIKE 'invalid params%' OR reason LIKE 'unknown action type%');
UPDATE actions SET skipped_as = 'denied' WHERE status = 'skipped' AND reason LIKE 'denied by%';
UPDATE actions SET skipped_as = 'not_allowed' WHERE status = 'skipped' AND skipped_as IS NULL;
