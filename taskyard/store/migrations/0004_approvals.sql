-- taskyard schema, version 4: approval requests, their decisions and every attempt to decide. {float} is filled per dialect.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    action_key TEXT NOT NULL,
    route TEXT NOT NULL,
    action_type TEXT NOT NULL,
    risk TEXT NOT NULL,
    rule TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at {float} NOT NULL,
    expires_at {float} NOT NULL,
    channels TEXT NOT NULL,
    remind_at {float},
    reminded_at {float},
    question TEXT,
    decided_at {float},
    decided_by TEXT,
    decided_via TEXT,
    reason TEXT,
    archived INTEGER NOT NULL DEFAULT 0
);
-- At most one pending request per action: a second request for it finds the first.
CREATE UNIQUE INDEX approvals_one_pending ON approvals (action_key) WHERE status = 'pending';
CREATE INDEX approvals_by_status ON approvals (status, created_at);
CREATE INDEX approvals_by_created ON approvals (created_at);
CREATE INDEX approvals_by_task ON approvals (task_id, created_at);
CREATE INDEX approvals_by_action ON approvals (action_key, created_at);
CREATE INDEX approvals_by_expiry ON approvals (status, expires_at);

CREATE TABLE approval_decisions (
    id TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL,
    at {float} NOT NULL,
    via TEXT NOT NULL,
    actor TEXT NOT NULL,
    decision TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    why TEXT
);
CREATE INDEX approval_decisions_by_approval ON approval_decisions (approval_id, at);
