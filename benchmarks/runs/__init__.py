"""Running the benchmark: config, grids, one learner assembly, one meta-update, trainer, runner, executors, store."""
