"""taskyard: webhooks in, routed and approved coding-agent work out."""

__version__ = "0.1.0"
