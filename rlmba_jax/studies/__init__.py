"""Studies over many runs: sweeps of strategies and seeds, their reports and paired
statistics, the tuning search's helpers, and policy-pretraining runs."""
