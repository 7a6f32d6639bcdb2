"""taskyard: webhooks in, routed and approved coding-agent work out."""

__all__ = ["__version__"]

__version__ = "0.1.0"
