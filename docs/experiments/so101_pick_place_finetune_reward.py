# so101_pick_place's reward with the placed cube worth 30 per step instead of 8, for finetuning a BC policy that
# already places it (README, #19): with the task's weights, holding the cube over the zone pays about as much as
# putting it down (grasp 1 + transport 4 + transport_fine 2 + lifted 2 against placed 8), and the residual
# learned to hold.
def compute_reward(s):
    components = {}
    components['reach'] = 1.0 * (1.0 - torch.tanh(torch.norm(s.ee_pos - s.object_pos, dim=-1) / 0.05))
    components['grasp'] = 1.0 * (s.finger_contact[:, 0] * s.finger_contact[:, 1])
    components['transport'] = 4.0 * ((1.0 - torch.tanh(torch.norm(s.object_pos[:, :2] - s.goal_pos[:, :2], dim=-1) / 0.1)) * s.finger_contact[:, 0] * s.finger_contact[:, 1])
    components['transport_fine'] = 2.0 * ((1.0 - torch.tanh(torch.norm(s.object_pos[:, :2] - s.goal_pos[:, :2], dim=-1) / 0.02)) * s.finger_contact[:, 0] * s.finger_contact[:, 1])
    components['lifted'] = 2.0 * (torch.clamp((s.object_pos[:, 2] - 0.0125) / 0.03, 0.0, 1.0) * s.finger_contact[:, 0] * s.finger_contact[:, 1])
    components['placed'] = 30.0 * (((torch.norm(s.object_pos[:, :2] - s.goal_pos[:, :2], dim=-1) < 0.03) & (s.object_pos[:, 2] < 0.02)).float())
    components['action_rate'] = -0.01 * (torch.sum((s.action - s.prev_action) ** 2, dim=-1))
    components['joint_vel'] = -0.001 * (torch.sum(s.joint_vel ** 2, dim=-1))
    total = sum(components.values())
    return total, components
