"""Actions: what agents propose, typed (`models`), keyed for idempotency (`keys`), recorded
(`records`), assessed by a policy hook (`policy`) and applied through platform writers
(`apply`).

Import from the submodules; this package imports nothing so the store can use `records`
without a cycle.
"""
