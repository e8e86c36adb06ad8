"""Dynamic 3D Gaussians' motion losses, written from the formulas published with the method
(Luiten et al., 2024): the oracle of the drop-in tests. One online step from frame t-1 (held
fixed) to frame t over a k-NN graph given as [M, k] neighbour tables."""
import torch


def weighted_l2_loss_v2(x, y, w):
    """mean of sqrt(w ||x - y||^2 + 1e-20) over all entries (norm over the last axis)."""
    return torch.sqrt(((x - y) ** 2).sum(-1) * w + 1e-20).mean()


def weighted_l2_loss_v1(x, y, w):
    """mean of sqrt(w (x - y)^2 + 1e-20) (scalar residuals)."""
    return torch.sqrt(((x - y) ** 2) * w + 1e-20).mean()


def quat_mult(q1, q2):
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], dim=-1)


def build_rotation(q):
    q = q / torch.sqrt((q ** 2).sum(-1, keepdim=True))
    w, x, y, z = q.unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                       dim=-1).unflatten(-1, (3, 3))


def normalize(q):
    return torch.nn.functional.normalize(q, dim=-1)


def step_losses(prev_pts, prev_unnorm_rot, pts, unnorm_rot, neighbours, weight, dist):
    """(rigid, rot, iso) of one step; frame t-1 enters detached, as in the method."""
    prev_rot = normalize(prev_unnorm_rot).detach()
    prev_inv_rot = prev_rot * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=prev_rot.dtype)
    prev_offset = (prev_pts[neighbours] - prev_pts[:, None]).detach()
    rot = normalize(unnorm_rot)
    rel_rot = quat_mult(rot, prev_inv_rot)
    rotation = build_rotation(rel_rot)
    curr_offset = pts[neighbours] - pts[:, None]
    curr_offset_in_prev_coord = (rotation.transpose(2, 1)[:, None] @ curr_offset[:, :, :, None]).squeeze(-1)
    rigid = weighted_l2_loss_v2(curr_offset_in_prev_coord, prev_offset, weight)
    rot_loss = weighted_l2_loss_v2(rel_rot[neighbours], rel_rot[:, None], weight)
    curr_offset_mag = torch.sqrt((curr_offset ** 2).sum(-1) + 1e-20)
    iso = weighted_l2_loss_v1(curr_offset_mag, dist, weight)
    return rigid, rot_loss, iso
