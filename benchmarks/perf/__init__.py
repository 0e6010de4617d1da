"""`python -m benchmarks perf`: times the learner that runs.build assembles against learn2learn, and its tools."""
