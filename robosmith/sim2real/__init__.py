"""Between simulation and the real arm: robustness over variants of the world, RAPP intervals, and (with real
recordings) the dynamics gap and system identification."""
