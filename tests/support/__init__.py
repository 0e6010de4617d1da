"""Helpers shared by the tests: synthetic batches and learners, report records, tiny datasets and
grids, a single-node SLURM cluster."""
