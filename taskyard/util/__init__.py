"""Leaf helpers every layer may use: private files, removing trees, dotted paths, redaction,
untrusted text. They import nothing of taskyard's but `taskyard.exceptions`."""
