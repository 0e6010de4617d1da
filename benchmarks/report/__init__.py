"""Reports and claim verdicts, regenerated from the results store: `reports/<grid>/README.md` with
tables and figures (`python -m benchmarks report`), and the claims table (`python -m benchmarks claims`).
Everything here is a pure function of the stored records."""
