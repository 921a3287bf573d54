"""robosmith's simulated SO-101 for LeRobot's commands (`lerobot-record --robot.type=robosmith_so101_sim ...`)."""

from robosmith.deploy.sim_robot import SimSO101, SimSO101Config

__all__ = ["SimSO101", "SimSO101Config"]
