"""The amfs-bench harness: data, episodes, backbones, method registry, grids, runner, results store,
executors, claims, reports and the command line (`python -m benchmarks`)."""
