"""Actions: what agents propose, typed (`models`), keyed for idempotency (`keys`), assessed by
a policy hook (`policy`), applied through platform writers (`apply`) and recorded
(`taskyard.records`, which the store shares).

Import from the submodules: this package exports nothing, so importing one submodule loads
no other.
"""
