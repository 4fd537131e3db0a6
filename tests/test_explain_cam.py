"""Heatmaps on networks whose answer is known: a tiny conv net trained to tell two shapes apart
wherever they sit (Grad-CAM must find the shape), and a binary one-logit net with constructed
weights that only looks at the top-left quadrant."""
import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.explain import class_scores, grad_cam, integrated_gradients, saliency

SIZE = 16
BLOB = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=torch.float32)  # class 1
RING = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.float32)  # class 0


def shapes_data(n: int, seed: int):
    """Noise images with one 4x4 shape (blob: class 1, ring: class 0) at a random place in a random
    quadrant; returns (images, labels, the shape's quadrant 0..3 = TL, TR, BL, BR)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    quadrant = torch.randint(0, 4, (n,), generator=g)
    top = (quadrant // 2) * 8 + torch.randint(0, 5, (n,), generator=g)
    left = (quadrant % 2) * 8 + torch.randint(0, 5, (n,), generator=g)
    for i in range(n):
        x[i, 0, top[i]:top[i] + 4, left[i]:left[i] + 4] += 2.0 * (BLOB if y[i] else RING)
    return x, y, quadrant


@pytest.fixture(scope="module")
def trained():
    # module fixtures run before the per-test one-thread fixture: two spinning threads on a busy
    # 2-core machine make this 5x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train()
    finally:
        torch.set_num_threads(threads)


def _train():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    x, y, _ = shapes_data(1024, seed=0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        i = torch.randint(0, len(x), (64,), generator=g)
        loss = nn.functional.cross_entropy(net(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = shapes_data(200, seed=1)
    accuracy = (net(test[0]).argmax(1) == test[1]).float().mean().item()
    assert accuracy >= 0.95, f"the test network did not learn the task ({accuracy:.2%})"
    return net.eval(), test


def _peak_quadrant(maps: np.ndarray) -> torch.Tensor:
    peak = torch.as_tensor(maps).flatten(1).argmax(1)
    return (peak // SIZE // 8) * 2 + (peak % SIZE) // 8


@pytest.mark.parametrize("plus", [False, True], ids=["grad-cam", "grad-cam++"])
def test_gradcam_peaks_on_the_shape_of_the_class(trained, plus):
    net, (x, y, quadrant) = trained
    cams = grad_cam(net, x, "3", y, plus=plus)
    assert cams.maps.shape == (200, SIZE, SIZE) and cams.raw.shape == (200, 8, 8)
    assert cams.maps.min() >= 0 and np.allclose(cams.maps.reshape(200, -1).max(1), 1)
    hits = (_peak_quadrant(cams.maps) == quadrant).float().mean().item()
    assert hits >= 0.9, f"the heatmap peaks on the shape for {hits:.0%} of images"


def test_gradcam_of_the_other_class_does_not_point_at_the_shape(trained):
    # the control: the map depends on the class asked for (a shape-agnostic map would pass the test above)
    net, (x, y, quadrant) = trained
    hits = (_peak_quadrant(grad_cam(net, x, "3", 1 - y).maps) == quadrant).float().mean().item()
    assert hits < 0.5


def test_gradcam_leaves_the_model_as_it_was(trained):
    net, (x, y, _) = trained
    net.zero_grad(set_to_none=True)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grad_cam(net, x[:4], "3", y[:4], plus=True)
    assert net.training  # the mode is restored
    assert all(p.grad is None for p in net.parameters())  # no gradient left on the weights
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    net.eval()


def test_integrated_gradients_are_complete(trained):
    # completeness: the attributions sum to score(x) - score(baseline); captum reports the gap
    net, (x, y, _) = trained
    ig = integrated_gradients(net, x[:8], y[:8], torch.zeros_like(x[:1]), steps=64)
    with torch.no_grad():
        gap = (class_scores(net(x[:8])) - class_scores(net(torch.zeros_like(x[:8])))).gather(1, y[:8, None]).abs()
    assert ig.maps.shape == (8, SIZE, SIZE)
    assert np.all(np.abs(ig.delta) < 0.05 * gap.numpy().ravel() + 1e-3)


class TopLeftDetector(nn.Module):
    """One logit: the summed brightness (3x3 mean, ReLU) inside the top-left 8x8 quadrant, minus 1."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 9)
            self.conv.bias.zero_()
        mask = torch.zeros(1, 1, SIZE, SIZE)
        mask[..., :8, :8] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        return (torch.relu(self.conv(x)) * self.mask).sum(dim=(1, 2, 3))[:, None] - 1


def _square_at(top: int, left: int) -> torch.Tensor:
    x = torch.zeros(1, 1, SIZE, SIZE)
    x[..., top:top + 3, left:left + 3] = 1
    return x


def test_binary_one_logit_head_class_1_and_class_0():
    net = TopLeftDetector().eval()
    x = _square_at(2, 3)
    cams = grad_cam(net, x.expand(2, -1, -1, -1), "conv", [1, 0])
    peak = np.unravel_index(cams.maps[0].argmax(), cams.maps[0].shape)
    assert 1 <= peak[0] <= 5 and 2 <= peak[1] <= 6  # on the square (3x3 at rows 2-4, cols 3-5, blurred by 1 px)
    # class 0's score is the negated logit: brightness speaks against it, so nothing is left after the ReLU
    assert cams.maps[1].max() == 0


def test_saliency_sees_only_what_the_network_reads():
    net = TopLeftDetector().eval()
    x = _square_at(2, 3) + 0.5  # every pixel bright: every ReLU open
    sal = saliency(net, x, [1]).maps[0]
    assert sal[:9, :9].max() == 1
    assert sal[9:, :].max() == 0 and sal[:, 9:].max() == 0  # beyond the quadrant plus the 3x3 kernel's 1 px


def test_out_of_range_class_is_an_error():
    with pytest.raises(ValueError, match="class 5 is out of range.*2 classes"):
        grad_cam(TopLeftDetector(), _square_at(0, 0), "conv", [5])
