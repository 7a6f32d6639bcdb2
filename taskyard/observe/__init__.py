"""What taskyard tells operators about itself: Prometheus metrics, logging, tracing."""
