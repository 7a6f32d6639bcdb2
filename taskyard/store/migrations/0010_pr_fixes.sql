-- taskyard schema, version 10: the fixes asked of each pull request (`taskyard.records.Fix`),
-- one running at a time per PR (the unique partial index is the lock), bounded per comment,
-- per hour and in cost.
CREATE TABLE pr_fixes (
    id TEXT PRIMARY KEY,
    pr TEXT NOT NULL,
    comment_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    cost_usd {float},
    created_at {float} NOT NULL,
    started_at {float},
    finished_at {float}
);
CREATE UNIQUE INDEX pr_fixes_running ON pr_fixes (pr) WHERE status = 'running';
CREATE INDEX pr_fixes_by_pr ON pr_fixes (pr, created_at);
