import math

import pytest
import torch

from bcssl_mm.models.losses import DINOLoss, dino_pairs


def direct_loss(student,
                teacher,
                center,
                n_views,
                n_global,
                t_s,
                t_t,
                skip_same_view=True):
    """DINO's loss written out element by element in Python floats."""
    n = student.shape[0] // n_views
    center = center[0].tolist()
    total, pairs = 0., 0
    for i in range(n_global):
        for v in range(n_views):
            if v == i and skip_same_view:
                continue
            for b in range(n):
                t = teacher[i * n + b].tolist()
                s = student[v * n + b].tolist()
                q = [math.exp((t[k] - center[k]) / t_t) for k in range(len(t))]
                z = sum(q)
                log_z_s = math.log(sum(math.exp(x / t_s) for x in s))
                total += sum(-q[k] / z * (s[k] / t_s - log_z_s)
                             for k in range(len(t))) / n
            pairs += 1
    return total / pairs


@pytest.mark.parametrize('n_views', [2, 4])
def test_loss_matches_formula(n_views):
    g = torch.Generator().manual_seed(0)
    n, d = 3, 7
    student = torch.randn(n_views * n, d, generator=g)
    teacher = torch.randn(2 * n, d, generator=g)
    loss_fn = DINOLoss(out_dim=d, student_temp=0.1)
    loss_fn.center.copy_(torch.randn(1, d, generator=g))
    got = loss_fn(student, teacher, n_views, teacher_temp=0.05)
    want = direct_loss(student, teacher, loss_fn.center, n_views, 2, 0.1, 0.05)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_same_view_pairs_are_skipped():
    assert dino_pairs(2, 4) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)]
    n, d = 2, 5
    g = torch.Generator().manual_seed(1)
    t = torch.randn(2 * n, d, generator=g)
    s = torch.randn(3 * n, d, generator=g)
    loss_fn = DINOLoss(out_dim=d)
    got = loss_fn(s, t, 3, 0.04).item()
    skipped = direct_loss(s, t, loss_fn.center, 3, 2, 0.1, 0.04)
    kept = direct_loss(
        s, t, loss_fn.center, 3, 2, 0.1, 0.04, skip_same_view=False)
    assert got == pytest.approx(skipped, rel=1e-5)
    assert got != pytest.approx(kept, rel=1e-3)


def test_center_update():
    d = 6
    loss_fn = DINOLoss(out_dim=d, center_momentum=0.9)
    c0 = torch.randn(1, d)
    loss_fn.center.copy_(c0)
    t = torch.randn(8, d)
    loss_fn.update_center(t)
    torch.testing.assert_close(loss_fn.center,
                               0.9 * c0 + 0.1 * t.mean(0, keepdim=True))
    assert 'center' in loss_fn.state_dict()
