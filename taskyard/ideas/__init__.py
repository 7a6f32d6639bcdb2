"""Ideas that run themselves (`taskyard.idea` is what is kept of one): intake from GitHub,
Discord, the CLI and the API (`shape`, `intake`), the plan an agent writes and its checks
(`plan`), the scheduler that turns a plan into change tasks and integrates them
(`scheduler`, `integrate`), and the events published from each idea's outbox (`events`)."""
