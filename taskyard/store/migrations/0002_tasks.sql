-- taskyard schema, version 2: tasks and routing decisions. {blob} and {float} are filled per dialect.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    route TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at {float} NOT NULL,
    updated_at {float} NOT NULL,
    workflow_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at {float},
    finished_at {float},
    workspace TEXT,
    usage TEXT,
    cost_usd {float},
    result TEXT,
    worker TEXT,
    process TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    dispatched INTEGER NOT NULL DEFAULT 0,
    UNIQUE (event_id, route)
);
CREATE INDEX tasks_by_status ON tasks (status, priority, created_at);
CREATE INDEX tasks_by_created ON tasks (created_at);
CREATE INDEX tasks_to_dispatch ON tasks (dispatched, priority, created_at);

CREATE TABLE route_decisions (
    event_id TEXT NOT NULL,
    route TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    task_id TEXT,
    decided_at {float} NOT NULL,
    PRIMARY KEY (event_id, route)
);
