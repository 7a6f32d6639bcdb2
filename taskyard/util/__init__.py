"""Leaf helpers every layer may use: private files, safe opens, removing trees, dotted paths,
redaction, untrusted text. They import nothing of taskyard's but `taskyard.exceptions`."""
