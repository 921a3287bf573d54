"""Run by mjlab's Python in the numerical test: the exported package's adapter and reward on given states.

    python mjlab_reward_on_states.py PACKAGE STATES.npz OUT.npz

STATES.npz holds qpos/qvel laid out as robosmith's CPU scene (6 arm joints, then the cube's free joint; the
exported mjlab scene has the same layout), the actions, episode steps and goals. OUT.npz gets every
SimState field the adapter built, the reward's total and its components.
"""

import importlib
import sys

import numpy as np
import torch

package, states_path, out_path = sys.argv[1:4]
env_cfg = importlib.import_module(f"{package}.env_cfg")
adapter = importlib.import_module(f"{package}.adapter")
buffers = importlib.import_module(f"{package}.buffers")
reward = importlib.import_module(f"{package}.reward")
from mjlab.envs import ManagerBasedRlEnv  # noqa: E402

states = np.load(states_path)
n = states["qpos"].shape[0]
env = ManagerBasedRlEnv(env_cfg.make_env_cfg(num_envs=n), device="cpu")
env.reset()


def tensor(name: str) -> torch.Tensor:
    return torch.as_tensor(states[name], dtype=torch.float32)


# The servo targets come from the actions through mjlab's action term, as they do when it trains.
env.action_manager.process_action(tensor("prev_action"))
env.action_manager.process_action(tensor("action"))
env.action_manager.apply_action()
env.scene.write_data_to_sim()
env.sim.data.qpos[:] = tensor("qpos")
env.sim.data.qvel[:] = tensor("qvel")
env.sim.forward()
env.sim.sense()
env.scene.update(dt=0.0)
env.episode_length_buf[:] = torch.as_tensor(states["episode_step"])
if "goal_pos" in states:
    buffers.goal_pos(env)[:] = tensor("goal_pos")

s = adapter.build_state(env)
total, components = reward.compute_reward(s)
out = {f"state/{k}": v.numpy() for k, v in vars(s).items() if v is not None}
out["pad_contacts"] = env.scene["pad_contact"].data.found.numpy() if "pad_contact" in env.scene.sensors else np.zeros(0)
out["total"] = total.numpy()
out.update({f"component/{k}": v.numpy() for k, v in components.items()})
np.savez(out_path, **out)
