-- taskyard schema, version 3: the actions tasks proposed and their outcomes. {float} is filled per dialect.
CREATE TABLE actions (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    route TEXT NOT NULL,
    type TEXT NOT NULL,
    params TEXT NOT NULL,
    reasoning TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    requests TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    in_doubt INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    external_id TEXT,
    url TEXT,
    created_at {float} NOT NULL,
    updated_at {float} NOT NULL
);
CREATE INDEX actions_by_task ON actions (task_id, idx, created_at);
CREATE INDEX actions_by_status ON actions (status, updated_at);
