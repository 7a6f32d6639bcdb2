"""The Review-Hash: a SHA-256 over a staged code state, recorded when review approves it,
written into the commit taskyard makes of exactly that state, and checked on every commit of
a range by `taskyard review-hash verify` (README, "Review-Hash"). Standard library and git
only: it runs in any repository, with no configuration."""

from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import staged_hash, tree_hash
from taskyard.review.verify import Finding, commits_in, verify_range

__all__ = [
    "Finding",
    "commit_with_review_hash",
    "commits_in",
    "staged_hash",
    "tree_hash",
    "verify_range",
]
