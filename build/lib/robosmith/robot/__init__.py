"""The SO-101: its model and fitted geometry, the physical-parameter registry, inverse kinematics, and the
units LeRobot speaks (degrees, range mode, calibration files)."""
