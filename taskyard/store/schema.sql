-- taskyard schema: the result of every migration applied. {blob} and {float} are filled per dialect.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    delivery_id TEXT,
    subject TEXT,
    actor TEXT,
    received_at {float} NOT NULL,
    priority INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body {blob} NOT NULL,
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    dispatch_key TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    processed_at {float}
);
CREATE INDEX events_by_status ON events (status, priority, received_at);
CREATE INDEX events_by_received ON events (received_at);
CREATE INDEX events_by_source ON events (source, received_at);

CREATE TABLE dedup_keys (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    expires_at {float} NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE INDEX dedup_keys_by_expiry ON dedup_keys (expires_at);

CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    ref TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at {float} NOT NULL,
    status TEXT NOT NULL,
    replays INTEGER NOT NULL DEFAULT 0,
    auto_retry_at {float},
    replayed_at {float}
);
CREATE INDEX dead_letters_by_status ON dead_letters (status, auto_retry_at);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at {float} NOT NULL,
    heartbeat_at {float} NOT NULL,
    recovered_by TEXT
);

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
    ending TEXT,
    gate TEXT,
    gates TEXT,
    parent_id TEXT,
    UNIQUE (event_id, route)
);
CREATE INDEX tasks_by_status ON tasks (status, priority, created_at);
CREATE INDEX tasks_by_created ON tasks (created_at);
CREATE INDEX tasks_to_dispatch ON tasks (dispatched, priority, created_at);
CREATE INDEX tasks_by_started ON tasks (started_at);
CREATE INDEX tasks_by_finished ON tasks (finished_at);
CREATE INDEX tasks_by_parent ON tasks (parent_id);

CREATE TABLE route_decisions (
    event_id TEXT NOT NULL,
    route TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    task_id TEXT,
    decided_at {float} NOT NULL,
    PRIMARY KEY (event_id, route)
);

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
    updated_at {float} NOT NULL,
    skipped_as TEXT
);
CREATE INDEX actions_by_task ON actions (task_id, idx, created_at);
CREATE INDEX actions_by_status ON actions (status, updated_at);

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

-- The audit log (`taskyard.audit`): append-only, each row's hash covering its fields and the
-- previous row's hash.
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

-- The fixes asked of each pull request (`taskyard.records.Fix`): at most one running per PR
-- (the unique partial index is the PR's lock).
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

-- The commits taskyard pushed to pull requests: a failing check starts a fix only on a head
-- taskyard pushed.
CREATE TABLE pr_pushes (
    pr TEXT NOT NULL,
    sha TEXT NOT NULL,
    task_id TEXT NOT NULL,
    at {float} NOT NULL,
    PRIMARY KEY (pr, sha)
);
-- What each failing check on a pull request's head came to (`taskyard.records.CiFailure`):
-- a fix (`fix_id`), a flaky rerun, or a refusal; one row per routing task (its id).
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

-- Ideas (`taskyard.idea`), their plans, tasks and event log (also their outbox).
CREATE TABLE ideas (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    shape TEXT NOT NULL,
    origin TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at {float} NOT NULL,
    updated_at {float} NOT NULL,
    reason TEXT,
    plan_version INTEGER NOT NULL DEFAULT 0,
    paused_from TEXT,
    branch TEXT,
    pr_url TEXT,
    budget_usd {float},
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ideas_by_status ON ideas (status, created_at);
CREATE TABLE idea_plans (
    idea_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    plan TEXT NOT NULL,
    errors TEXT,
    created_at {float} NOT NULL,
    PRIMARY KEY (idea_id, version)
);
CREATE TABLE idea_tasks (
    idea_id TEXT NOT NULL,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    plan_version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    task_id TEXT,
    branch TEXT,
    integrated TEXT,
    PRIMARY KEY (idea_id, key)
);
CREATE TABLE idea_events (
    idea_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    at {float} NOT NULL,
    published_at {float},
    PRIMARY KEY (idea_id, seq)
);
CREATE INDEX idea_events_unpublished ON idea_events (published_at, idea_id, seq);
