"""Running candidates: job and result files, confinement, the smoke run, and executors (a local process pool)."""
