"""The Review-Hash: a SHA-256 over a staged code state, recorded when review approves it,
written into the commit taskyard makes of exactly that state, and checked on every commit of
a range by `taskyard review-hash verify` (README, "Review-Hash"); and the safety checks a
change passes before it is posted or pushed (its size, no secret added); and a fix shown as a
review of GitHub suggested changes (suggestion mode). Standard library and git only (the
secret scan: detect-secrets): it runs in any repository, with no configuration."""

from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import staged_hash, tree_hash
from taskyard.review.safety import (
    ChangeLimits,
    DiffStats,
    SecretFinding,
    check_change,
    diff_stats,
    scan_secrets,
)
from taskyard.review.suggest import (
    Suggestion,
    SuggestionPlan,
    commentable_lines,
    review_request,
    suggestions_from_diff,
)
from taskyard.review.verify import Finding, commits_in, verify_range

__all__ = [
    "ChangeLimits",
    "DiffStats",
    "Finding",
    "SecretFinding",
    "Suggestion",
    "SuggestionPlan",
    "check_change",
    "commentable_lines",
    "commit_with_review_hash",
    "commits_in",
    "diff_stats",
    "review_request",
    "scan_secrets",
    "staged_hash",
    "suggestions_from_diff",
    "tree_hash",
    "verify_range",
]
