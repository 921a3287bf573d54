"""Behaviour cloning through LeRobot, and reinforcement learning on top of the cloned policy.

collect (scripted demonstrations → LeRobot dataset) → train (lerobot-train) → evaluate (our simulator) →
finetune (a residual policy trained with PPO on top of the frozen BC policy).
"""
