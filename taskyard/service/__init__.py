"""The composition root: `serve` and `worker` build every part once and start them."""
