"""Test support code that is not a test: a throwaway single-node SLURM cluster, picklable job functions."""
