-- taskyard schema, version 9: the audit log (`taskyard.audit`), append-only and hash-chained:
-- each row's hash covers its fields and the previous row's hash. Rows are only inserted.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at {float} NOT NULL,
    kind TEXT NOT NULL,
    task_id TEXT,
    actor TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_by_task ON audit_log (task_id, seq);
