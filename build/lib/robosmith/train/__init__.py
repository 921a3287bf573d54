"""Training and evaluation: the task as an rsl-rl environment, PPO, evaluation, and the policy interface."""
