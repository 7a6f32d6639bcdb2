"""Durable work: priority, deduplication by workflow id, retries, dead letters, replay."""

from taskyard.queue.base import JobQueue
from taskyard.queue.jobs import ROUTE_JOB, Handler, JobContext, JobRuntime

__all__ = ["ROUTE_JOB", "Handler", "JobContext", "JobQueue", "JobRuntime"]
