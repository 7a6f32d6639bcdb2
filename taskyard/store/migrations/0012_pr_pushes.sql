-- taskyard schema, version 12: the commits taskyard pushed to pull requests, and what each
-- failing check on a pull request's head came to (`taskyard.records.CiFailure`): a fix asked
-- of the model, a flaky rerun of a check already fixed on that head, or a refusal.
CREATE TABLE pr_pushes (
    pr TEXT NOT NULL,
    sha TEXT NOT NULL,
    task_id TEXT NOT NULL,
    at {float} NOT NULL,
    PRIMARY KEY (pr, sha)
);
CREATE TABLE ci_failures (
    id TEXT PRIMARY KEY,
    pr TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    check_name TEXT NOT NULL,
    outcome TEXT NOT NULL,
    task_id TEXT NOT NULL UNIQUE,
    fix_id TEXT,
    reason TEXT,
    at {float} NOT NULL
);
CREATE INDEX ci_failures_by_head ON ci_failures (pr, head_sha);
