"""Policy as code: `policies.yaml` rules, each a CEL condition over a documented input,
evaluated at three points (scheduling, pre-merge, pre-deploy) to allow, deny or require
approval (`taskyard.policy.rules` loads and compiles, `taskyard.policy.engine` evaluates and
records)."""
