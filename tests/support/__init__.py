"""Helpers shared by the tests: synthetic batches and learners, report records, tiny datasets, a
single-node SLURM cluster."""
