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
                   workflow_id, spec, attempts, cancel_requested, dispatched)
VALUES (:id, :event_id, :route, :agent, :status, :priority, :created_at, :updated_at,
        :workflow_id, :spec, 0, 0, 0)
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

-- name: tasks_to_dispatch
SELECT * FROM tasks WHERE dispatched = 0 AND status = 'queued'
ORDER BY priority, created_at LIMIT :limit

-- name: mark_task_dispatched
UPDATE tasks SET dispatched = 1 WHERE id = :id AND workflow_id = :workflow_id

-- name: request_cancel
UPDATE tasks SET cancel_requested = 1, updated_at = :now
WHERE id = :id AND status IN ('queued', 'preparing', 'running')

-- name: retry_task
UPDATE tasks SET status = 'queued', reason = NULL, workflow_id = :workflow_id, dispatched = 0,
    cancel_requested = 0, finished_at = NULL, process = NULL, updated_at = :now
WHERE id = :id AND status IN ('succeeded', 'failed', 'timed_out', 'cancelled')

-- name: count_tasks_by_status
SELECT status, COUNT(*) AS n FROM tasks GROUP BY status

-- name: upsert_action
INSERT INTO actions (key, task_id, idx, route, type, params, reasoning, status, reason, requests,
                     sent, in_doubt, attempts, external_id, url, created_at, updated_at)
VALUES (:key, :task_id, :idx, :route, :type, :params, :reasoning, :status, :reason, :requests,
        :sent, :in_doubt, :attempts, :external_id, :url, :created_at, :updated_at)
ON CONFLICT (key) DO UPDATE SET status = excluded.status, reason = excluded.reason,
    requests = excluded.requests, sent = excluded.sent, in_doubt = excluded.in_doubt,
    attempts = excluded.attempts, external_id = excluded.external_id, url = excluded.url,
    updated_at = excluded.updated_at

-- name: get_action
SELECT * FROM actions WHERE key = :key

-- name: actions_of_task
SELECT * FROM actions WHERE task_id = :task_id ORDER BY idx, created_at, key
