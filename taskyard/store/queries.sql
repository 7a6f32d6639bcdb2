-- Named queries shared by SQLite and PostgreSQL. Parameters are written :name.

-- name: record_migration
INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)

-- name: upsert_dedup
INSERT INTO dedup_keys (source, key, event_id, expires_at)
VALUES (:source, :key, :event_id, :expires_at)
ON CONFLICT (source, key) DO UPDATE
    SET event_id = excluded.event_id, expires_at = excluded.expires_at
    WHERE dedup_keys.expires_at <= :now
RETURNING event_id

-- name: dedup_owner
SELECT event_id FROM dedup_keys WHERE source = :source AND key = :key

-- name: insert_event
INSERT INTO events (id, source, type, delivery_id, subject, actor, received_at, priority,
                    headers, body, content_hash, status, dispatch_key)
VALUES (:id, :source, :type, :delivery_id, :subject, :actor, :received_at, :priority,
        :headers, :body, :content_hash, :status, :dispatch_key)

-- name: get_event
SELECT * FROM events WHERE id = :id

-- name: events_to_dispatch
SELECT id, priority, dispatch_key FROM events WHERE status = 'received'
ORDER BY priority, received_at LIMIT :limit

-- name: mark_dispatched
UPDATE events SET status = 'queued' WHERE id = :id AND status = 'received' AND dispatch_key = :dispatch_key

-- name: start_event
UPDATE events SET status = 'processing', attempts = attempts + 1, error = NULL WHERE id = :id

-- name: finish_event
UPDATE events SET status = :status, error = :error, processed_at = :now WHERE id = :id

-- name: requeue_event
UPDATE events SET status = 'received', dispatch_key = :dispatch_key, error = NULL WHERE id = :id

-- name: count_in_flight
SELECT COUNT(*) AS n FROM events WHERE status IN ('queued', 'processing')

-- name: count_events_by_status
SELECT status, COUNT(*) AS n FROM events GROUP BY status

-- name: insert_dead_letter
INSERT INTO dead_letters (id, job, ref, error, attempts, failed_at, status, replays, auto_retry_at)
VALUES (:id, :job, :ref, :error, :attempts, :failed_at, 'open', :replays, :auto_retry_at)

-- name: get_dead_letter
SELECT * FROM dead_letters WHERE id = :id

-- name: open_dead_letter_for
SELECT * FROM dead_letters WHERE job = :job AND ref = :ref AND status = 'open'

-- name: replays_of
SELECT COUNT(*) AS n FROM dead_letters WHERE job = :job AND ref = :ref

-- name: mark_dead_letter_replayed
UPDATE dead_letters SET status = 'replayed', replayed_at = :now WHERE id = :id AND status = 'open'

-- name: due_dead_letters
SELECT * FROM dead_letters WHERE status = 'open' AND auto_retry_at IS NOT NULL
AND auto_retry_at <= :now ORDER BY failed_at LIMIT :limit

-- name: upsert_worker
INSERT INTO workers (id, role, host, pid, started_at, heartbeat_at, recovered_by)
VALUES (:id, :role, :host, :pid, :now, :now, NULL)
ON CONFLICT (id) DO UPDATE SET role = excluded.role, host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, recovered_by = NULL

-- name: heartbeat
UPDATE workers SET heartbeat_at = :now WHERE id = :id

-- name: stale_workers
SELECT id FROM workers WHERE heartbeat_at < :cutoff AND recovered_by IS NULL AND id <> :id

-- name: claim_worker
UPDATE workers SET recovered_by = :by WHERE id = :id AND recovered_by IS NULL AND heartbeat_at < :cutoff

-- name: delete_expired_dedup
DELETE FROM dedup_keys WHERE expires_at <= :now

-- name: claim_and_insert_event
-- PostgreSQL only: claim the dedup key and store the event in one statement (one round trip
-- per event, pipelined over the batch). A row comes back when the event is new.
WITH claim AS (
    INSERT INTO dedup_keys (source, key, event_id, expires_at)
    VALUES (:source, :key, :id, :expires_at)
    ON CONFLICT (source, key) DO UPDATE
        SET event_id = excluded.event_id, expires_at = excluded.expires_at
        WHERE dedup_keys.expires_at <= :now
    RETURNING event_id
)
INSERT INTO events (id, source, type, delivery_id, subject, actor, received_at, priority,
                    headers, body, content_hash, status, dispatch_key)
SELECT :id, :source, :type, :delivery_id, :subject, :actor, :received_at, :priority,
       :headers, :body, :content_hash, :status, :dispatch_key
FROM claim
RETURNING id

-- name: insert_task
INSERT INTO tasks (id, event_id, route, agent, status, priority, created_at, updated_at,
                   workflow_id, spec, attempts, cancel_requested, dispatched, parent_id)
VALUES (:id, :event_id, :route, :agent, :status, :priority, :created_at, :updated_at,
        :workflow_id, :spec, 0, 0, 0, :parent_id)
ON CONFLICT (event_id, route) DO NOTHING

-- name: insert_decision
INSERT INTO route_decisions (event_id, route, decision, reason, task_id, decided_at)
VALUES (:event_id, :route, :decision, :reason, :task_id, :decided_at)
ON CONFLICT (event_id, route) DO NOTHING

-- name: decisions_for
SELECT * FROM route_decisions WHERE event_id = :event_id ORDER BY route

-- name: get_task
SELECT * FROM tasks WHERE id = :id

-- name: tasks_of_event
SELECT * FROM tasks WHERE event_id = :event_id ORDER BY route

-- name: subtasks_of
SELECT * FROM tasks WHERE parent_id = :parent_id ORDER BY created_at, id

-- name: parent_of
SELECT parent_id FROM tasks WHERE id = :id

-- name: tasks_to_dispatch
SELECT * FROM tasks WHERE dispatched = 0 AND status IN ('queued', 'applying')
ORDER BY priority, created_at LIMIT :limit

-- name: mark_task_dispatched
UPDATE tasks SET dispatched = 1 WHERE id = :id AND workflow_id = :workflow_id

-- name: count_tasks_by_status
SELECT status, COUNT(*) AS n FROM tasks GROUP BY status

-- name: upsert_action
INSERT INTO actions (key, task_id, idx, route, type, params, reasoning, status, reason, requests,
                     sent, in_doubt, attempts, external_id, url, created_at, updated_at,
                     skipped_as)
VALUES (:key, :task_id, :idx, :route, :type, :params, :reasoning, :status, :reason, :requests,
        :sent, :in_doubt, :attempts, :external_id, :url, :created_at, :updated_at, :skipped_as)
ON CONFLICT (key) DO UPDATE SET status = excluded.status, reason = excluded.reason,
    requests = excluded.requests, sent = excluded.sent, in_doubt = excluded.in_doubt,
    attempts = excluded.attempts, external_id = excluded.external_id, url = excluded.url,
    updated_at = excluded.updated_at, skipped_as = excluded.skipped_as

-- name: get_action
SELECT * FROM actions WHERE key = :key

-- name: actions_of_task
SELECT * FROM actions WHERE task_id = :task_id ORDER BY idx, created_at, key

-- name: insert_approval
-- A second pending request for the same action inserts nothing (the partial unique index).
INSERT INTO approvals (id, task_id, action_key, route, action_type, risk, rule, summary, details,
                       status, created_at, expires_at, channels, remind_at, reminded_at,
                       question, decided_at, decided_by, decided_via, reason, archived)
VALUES (:id, :task_id, :action_key, :route, :action_type, :risk, :rule, :summary, :details,
        :status, :created_at, :expires_at, :channels, :remind_at, :reminded_at,
        :question, :decided_at, :decided_by, :decided_via, :reason, :archived)
ON CONFLICT (action_key) WHERE status = 'pending' DO NOTHING

-- name: get_approval
SELECT * FROM approvals WHERE id = :id

-- name: pending_approval_for
SELECT * FROM approvals WHERE action_key = :action_key AND status = 'pending'

-- name: latest_approval_for
SELECT * FROM approvals WHERE action_key = :action_key ORDER BY created_at DESC, id DESC LIMIT 1

-- name: approvals_by_channel
-- A prefilter on the JSON text; the store checks the exact platform and key.
SELECT * FROM approvals WHERE channels LIKE :pattern ESCAPE '\' ORDER BY created_at DESC, id DESC

-- name: set_approval_channels
UPDATE approvals SET channels = :channels WHERE id = :id

-- name: lock_approval
-- PostgreSQL only: hold the request while its channels are read, merged and written back.
SELECT channels FROM approvals WHERE id = :id FOR UPDATE

-- name: lock_task
-- PostgreSQL only: every decision on a task's requests takes the task's row first, so the
-- last one to leave it without a pending request sees the others' and resumes it.
SELECT id FROM tasks WHERE id = :id FOR UPDATE

-- name: decide_approval
UPDATE approvals SET status = :status, decided_at = :now, decided_by = :actor,
    decided_via = :via, reason = :reason
WHERE id = :id AND status = 'pending' AND expires_at > :now

-- name: ask_approval_question
UPDATE approvals SET question = :question
WHERE id = :id AND status = 'pending' AND expires_at > :now

-- name: approvals_to_expire
SELECT id, task_id FROM approvals WHERE status = 'pending' AND expires_at <= :now

-- name: expire_approval
UPDATE approvals SET status = 'expired', decided_at = :now, decided_by = 'taskyard',
    decided_via = 'expiry'
WHERE id = :id AND status = 'pending' AND expires_at <= :now

-- name: insert_decision_attempt
INSERT INTO approval_decisions (id, approval_id, at, via, actor, decision, accepted, why)
VALUES (:id, :approval_id, :at, :via, :actor, :decision, :accepted, :why)

-- name: decision_attempts
SELECT * FROM approval_decisions WHERE approval_id = :approval_id ORDER BY at, id

-- name: due_reminders
SELECT * FROM approvals WHERE status = 'pending' AND remind_at IS NOT NULL
AND remind_at <= :now AND reminded_at IS NULL ORDER BY remind_at, id

-- name: mark_reminded
UPDATE approvals SET reminded_at = :now WHERE id = :id

-- name: archive_expired_approvals
UPDATE approvals SET archived = 1 WHERE status = 'expired' AND archived = 0 AND decided_at < :before

-- name: pending_approvals_by_risk
SELECT risk, COUNT(*) AS n, MIN(created_at) AS oldest FROM approvals WHERE status = 'pending'
GROUP BY risk

-- name: stats_events_received
SELECT COUNT(*) AS n FROM events WHERE received_at >= :since AND received_at < :until

-- name: stats_tasks_ended
SELECT route, status, COUNT(*) AS n, SUM(cost_usd) AS cost, COUNT(cost_usd) AS costed
FROM tasks WHERE finished_at >= :since AND finished_at < :until
AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'expired')
GROUP BY route, status ORDER BY route, status

-- name: stats_tasks_timed
SELECT COUNT(*) AS n FROM tasks WHERE finished_at >= :since AND finished_at < :until
AND started_at IS NOT NULL AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'expired')

-- name: stats_task_duration_at
-- The duration at one position (0-based) of the timed tasks' durations in ascending order.
SELECT finished_at - started_at AS seconds FROM tasks
WHERE finished_at >= :since AND finished_at < :until
AND started_at IS NOT NULL AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'expired')
ORDER BY seconds LIMIT 1 OFFSET :position

-- name: count_dead_letters_by_status
SELECT status, COUNT(*) AS n FROM dead_letters GROUP BY status

-- name: spent_between
SELECT SUM(cost_usd) AS usd FROM tasks
WHERE started_at >= :since AND started_at < :until AND cost_usd IS NOT NULL

-- name: costs_between
SELECT id, route, agent, started_at, cost_usd FROM tasks
WHERE started_at >= :since AND started_at < :until AND cost_usd IS NOT NULL
ORDER BY started_at, id

-- name: claim_and_insert_event_with_replay
-- PostgreSQL only: as claim_and_insert_event, and the event is stored only if its content key
-- (the replay key) is free too. A row comes back when the event is new.
WITH claim AS (
    INSERT INTO dedup_keys (source, key, event_id, expires_at)
    VALUES (:source, :key, :id, :expires_at)
    ON CONFLICT (source, key) DO UPDATE
        SET event_id = excluded.event_id, expires_at = excluded.expires_at
        WHERE dedup_keys.expires_at <= :now
    RETURNING event_id
), replay AS (
    INSERT INTO dedup_keys (source, key, event_id, expires_at)
    SELECT :source, :replay_key, :id, :replay_expires_at FROM claim
    ON CONFLICT (source, key) DO UPDATE
        SET event_id = excluded.event_id, expires_at = excluded.expires_at
        WHERE dedup_keys.expires_at <= :now
    RETURNING event_id
)
INSERT INTO events (id, source, type, delivery_id, subject, actor, received_at, priority,
                    headers, body, content_hash, status, dispatch_key)
SELECT :id, :source, :type, :delivery_id, :subject, :actor, :received_at, :priority,
       :headers, :body, :content_hash, :status, :dispatch_key
FROM replay
RETURNING id

-- name: repoint_dedup
UPDATE dedup_keys SET event_id = :owner WHERE source = :source AND key = :key AND event_id = :id

-- name: lock_audit_log
-- PostgreSQL only: appends take turns (readers do not wait), so each one reads the last entry
-- another committed and links to it. SQLite's write transaction already takes turns.
LOCK TABLE audit_log IN EXCLUSIVE MODE

-- name: last_audit_entry
SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1

-- name: insert_audit_entry
INSERT INTO audit_log (seq, at, kind, task_id, actor, data, prev_hash, hash)
VALUES (:seq, :at, :kind, :task_id, :actor, :data, :prev_hash, :hash)

-- name: audit_entries
SELECT * FROM audit_log WHERE seq > :after ORDER BY seq LIMIT :limit

-- name: audit_entries_of_task
SELECT * FROM audit_log WHERE task_id = :task_id AND seq > :after ORDER BY seq LIMIT :limit

-- name: lock_pr_fixes
-- PostgreSQL only: the fixes of one PR take turns (a transaction-scoped advisory lock on the
-- PR's name), so counting and admitting, or checking and starting, see each other's commits.
-- SQLite's write transaction already takes turns.
SELECT pg_advisory_xact_lock(7272743, hashtext(:pr))

-- name: insert_fix
INSERT INTO pr_fixes (id, pr, comment_id, task_id, status, reason, created_at)
VALUES (:id, :pr, :comment_id, :task_id, :status, :reason, :created_at)

-- name: get_fix
SELECT * FROM pr_fixes WHERE id = :id

-- name: fix_counts
-- What bounds one more fix of a PR: its admitted fixes on the comment, its admitted fixes
-- created within the window, and what its fixes cost so far.
SELECT
    COALESCE(SUM(CASE WHEN comment_id = :comment_id AND status <> 'refused' THEN 1 ELSE 0 END), 0)
        AS on_comment,
    COALESCE(SUM(CASE WHEN created_at > :window_start AND status <> 'refused' THEN 1 ELSE 0 END), 0)
        AS in_window,
    COALESCE(SUM(cost_usd), 0) AS spent
FROM pr_fixes WHERE pr = :pr

-- name: start_fix
-- The PR's oldest queued fix starts, unless one of its fixes is running (the unique partial
-- index pr_fixes_running refuses a second one whatever happens).
UPDATE pr_fixes SET status = 'running', started_at = :now
WHERE status = 'queued' AND id = (
    SELECT id FROM pr_fixes WHERE pr = :pr AND status = 'queued'
    ORDER BY created_at, id LIMIT 1
) AND NOT EXISTS (SELECT 1 FROM pr_fixes WHERE pr = :pr AND status = 'running')

-- name: running_fix
SELECT * FROM pr_fixes WHERE pr = :pr AND status = 'running'

-- name: finish_fix
UPDATE pr_fixes SET status = :status, cost_usd = :cost_usd, finished_at = :now
WHERE id = :id AND status IN ('queued', 'running')

-- name: fixes_of
SELECT * FROM pr_fixes WHERE pr = :pr AND created_at >= :since ORDER BY created_at, id

-- name: pr_spend
SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM pr_fixes WHERE pr = :pr

-- name: fix_of_task
-- The PR's fix run by this task: asked again for the same task (a routing job that ran
-- again), the stored one is the answer.
SELECT * FROM pr_fixes WHERE pr = :pr AND task_id = :task_id

-- name: record_push
INSERT INTO pr_pushes (pr, sha, task_id, at) VALUES (:pr, :sha, :task_id, :at)
ON CONFLICT (pr, sha) DO NOTHING

-- name: pushed_by_taskyard
SELECT 1 AS pushed FROM pr_pushes WHERE pr = :pr AND sha = :sha

-- name: ci_failure_of_task
SELECT * FROM ci_failures WHERE task_id = :task_id

-- name: ci_head_counts
-- What bounds a fix for a failing check on one head: the head's CI fixes, and whether this
-- check already had one there (then its failing again is a flaky rerun).
SELECT
    COALESCE(SUM(CASE WHEN outcome = 'fix' THEN 1 ELSE 0 END), 0) AS fixes,
    COALESCE(SUM(CASE WHEN outcome = 'fix' AND check_name = :check_name THEN 1 ELSE 0 END), 0)
        AS same_check
FROM ci_failures WHERE pr = :pr AND head_sha = :head_sha

-- name: insert_ci_failure
INSERT INTO ci_failures (id, pr, head_sha, check_name, outcome, task_id, fix_id, reason, at)
VALUES (:id, :pr, :head_sha, :check_name, :outcome, :task_id, :fix_id, :reason, :at)

-- name: repo_fixes
-- The newest fixes of a repository's pull requests (`:prefix` is "github:owner/name#", `:n`
-- its length).
SELECT * FROM pr_fixes WHERE substr(pr, 1, CAST(:n AS INTEGER)) = CAST(:prefix AS TEXT)
ORDER BY created_at DESC, id DESC LIMIT :limit

-- name: ci_outcomes
SELECT outcome, COUNT(*) AS n FROM ci_failures
WHERE substr(pr, 1, CAST(:n AS INTEGER)) = CAST(:prefix AS TEXT) GROUP BY outcome

-- name: fixed_prs
SELECT DISTINCT pr FROM pr_fixes ORDER BY pr

-- --- ideas (taskyard.idea; store/sql_ideas.py) ---------------------------------------------

-- name: insert_idea
INSERT INTO ideas (id, status, shape, origin, event_id, created_at, updated_at, reason,
                   plan_version, paused_from, branch, pr_url, budget_usd, last_seq)
VALUES (:id, :status, :shape, :origin, :event_id, :created_at, :updated_at, :reason,
        :plan_version, :paused_from, :branch, :pr_url, :budget_usd, 0)
ON CONFLICT (id) DO NOTHING

-- name: get_idea
SELECT * FROM ideas WHERE id = :id

-- name: list_ideas
SELECT * FROM ideas ORDER BY created_at DESC, id LIMIT :limit

-- name: list_ideas_in
SELECT * FROM ideas WHERE status = :status ORDER BY created_at DESC, id LIMIT :limit

-- name: next_idea_seq
-- The idea's next event number; the UPDATE holds the idea's row until the transaction ends,
-- so events of one idea are numbered one after the other.
UPDATE ideas SET last_seq = last_seq + 1 WHERE id = :id

-- name: idea_last_seq
SELECT last_seq FROM ideas WHERE id = :id

-- name: insert_idea_event
INSERT INTO idea_events (idea_id, seq, subject, kind, data, at, published_at)
VALUES (:idea_id, :seq, :subject, :kind, :data, :at, NULL)

-- name: idea_events
SELECT * FROM idea_events WHERE idea_id = :idea_id AND seq > :after ORDER BY seq

-- name: unpublished_idea_events
SELECT * FROM idea_events WHERE published_at IS NULL ORDER BY idea_id, seq LIMIT :limit

-- name: mark_idea_event_published
UPDATE idea_events SET published_at = :at
WHERE idea_id = :idea_id AND seq = :seq AND published_at IS NULL

-- name: insert_idea_plan
INSERT INTO idea_plans (idea_id, version, plan, errors, created_at)
VALUES (:idea_id, :version, :plan, :errors, :created_at)

-- name: idea_plans
SELECT * FROM idea_plans WHERE idea_id = :idea_id ORDER BY version

-- name: upsert_idea_task
INSERT INTO idea_tasks (idea_id, key, title, depends_on, plan_version, spec, task_id, branch,
                        integrated)
VALUES (:idea_id, :key, :title, :depends_on, :plan_version, :spec, NULL, NULL, NULL)
ON CONFLICT (idea_id, key) DO UPDATE SET title = excluded.title,
    depends_on = excluded.depends_on, plan_version = excluded.plan_version, spec = excluded.spec

-- name: idea_tasks
SELECT * FROM idea_tasks WHERE idea_id = :idea_id ORDER BY key

-- name: delete_idea_task
DELETE FROM idea_tasks WHERE idea_id = :idea_id AND key = :key AND task_id IS NULL
