"""Deployment on the SO-101 through LeRobot: the deploy loop (`loop`), its safety layer (`safety`), our simulated
arm as a LeRobot robot (`sim_robot`), emulated Feetech servos for testing the real driver (`feetech_emulator`)
and the check that `deploy --sim` agrees with `robosmith eval` (`agreement`).

LeRobot looks a plugin robot's class up next to its config: `SimSO101` is found here, imported on first use.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("SimSO101", "SimSO101Config"):
        from robosmith.deploy import sim_robot

        return getattr(sim_robot, name)
    raise AttributeError(name)
