-- taskyard schema, version 13: ideas (`taskyard.idea`), their plans (one row per version),
-- the tasks their plans became, and each idea's event log, which is also its outbox: events
-- are published in `seq` order and marked once sent.
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
