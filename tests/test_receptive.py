"""Conv arithmetic (report 001-t): the report's worked examples by hand, the output-size formula,
and `cnnlab shapes` against the real forward pass of every registered model."""
import argparse

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.explain.by_hand import convolve, max_pool
from cnnlab.models import create_model, list_models, model_info
from cnnlab.models.receptive import check_geometry, conv_output_size, format_geometry, trace_geometry

# Report 001, theory question 1: a 4 x 4 x 3 image I (R all 1, G all 2, B rows 1, 2, 3, 4) and
# one 3 x 3 x 3 filter of ones.
IMAGE = np.stack([np.ones((4, 4)), np.full((4, 4), 2.0), np.repeat(np.arange(1.0, 5.0)[:, None], 4, axis=1)], axis=2)
KERNEL = np.ones((3, 3, 3))


def test_convolution_without_padding_is_the_reports_45_and_54():
    # the report: 9 + 18 + 18 and 9 + 18 + 27 (R, G, B contributions)
    np.testing.assert_array_equal(convolve(IMAGE, KERNEL), [[45, 45], [54, 54]])
    per_channel = convolve(IMAGE, KERNEL, per_channel=True)
    np.testing.assert_array_equal(per_channel[0, 0], [9, 18, 18])
    np.testing.assert_array_equal(per_channel[1, 0], [9, 18, 27])


def test_convolution_with_zero_padding_is_the_reports_matrix():
    np.testing.assert_array_equal(convolve(IMAGE, KERNEL, padding=1),
                                  [[18, 27, 27, 18], [30, 45, 45, 30], [36, 54, 54, 36], [26, 39, 39, 26]])


def test_dilated_convolution_is_the_reports_matrix():
    np.testing.assert_array_equal(convolve(IMAGE, KERNEL, padding=2, dilation=2),
                                  [[20] * 4, [24] * 4, [20] * 4, [24] * 4])


def test_max_pooling_of_i_is_the_reports_answer():
    pooled = max_pool(IMAGE)  # 2 x 2 windows, stride 2, per channel
    np.testing.assert_array_equal(pooled[:, :, 0], [[1, 1], [1, 1]])
    np.testing.assert_array_equal(pooled[:, :, 1], [[2, 2], [2, 2]])
    np.testing.assert_array_equal(pooled[:, :, 2], [[2, 2], [4, 4]])
    np.testing.assert_array_equal(max_pool(np.arange(16.0).reshape(4, 4)), [[5, 7], [13, 15]])


def test_by_hand_agrees_with_torch():
    rng = np.random.default_rng(0)
    image, kernel = rng.normal(size=(7, 6, 2)), rng.normal(size=(3, 3, 2))
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (1, 2, 2), (2, 0, 2)]:
        expected = torch.nn.functional.conv2d(torch.tensor(image).permute(2, 0, 1)[None],
                                              torch.tensor(kernel).permute(2, 0, 1)[None],
                                              stride=stride, padding=padding, dilation=dilation)[0, 0].numpy()
        np.testing.assert_allclose(convolve(image, kernel, stride, padding, dilation), expected, atol=1e-12)


def test_output_size_formula_of_the_report():
    assert conv_output_size(128, 3) == 126            # question 7: 128x128x32, 16 3x3 filters -> 126x126x16
    assert conv_output_size(128, 3, s=2) == 63        # question 8: (128 - 3 + 0)//2 + 1
    assert conv_output_size(64, 1) == 64              # question 9: 1x1 convolution keeps the size
    assert conv_output_size(4, 3, p=1) == 4 and conv_output_size(4, 3, p=2, d=2) == 4
    assert conv_output_size(5, 2, s=2) == 2 and conv_output_size(5, 2, s=2, ceil_mode=True) == 3
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_size(2, 3)


def test_receptive_field_jump_and_start_by_hand():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=2, dilation=2))
    rows = trace_geometry(net, 32, in_chans=1).layers
    got = [(r.size[0], r.out[0].rf, r.out[0].jump, r.out[0].start) for r in rows]
    # conv 3: 30 px, rf 3, jump 1, start 1.5; pool 2: 15, rf 4, jump 2, start 2;
    # dilated conv (effective kernel 5, pad 2): 15, rf 4 + 4 * 2 = 12, jump 2, start 2
    assert got == [(30, 3, 1, 1.5), (15, 4, 2, 2.0), (15, 12, 2, 2.0)]


def test_branches_are_followed_as_wired():
    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.deep = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
            self.short = nn.Conv2d(1, 1, 1)
            self.after = nn.Conv2d(1, 1, 3, stride=2, padding=1)

        def forward(self, x):
            return self.after(self.short(x) + self.deep(x))

    rows = {r.name: r for r in trace_geometry(TwoPaths(), 16, in_chans=1).layers}
    # the 1x1 shortcut runs after the deep path but does not stack on it: rf 1, not 5
    assert rows["short"].out[0].rf == 1 and rows["deep.1"].out[0].rf == 5
    assert rows["after"].out[0].rf == 7 and rows["after"].size == (8, 8)  # the larger branch wins at the sum


def _module_outputs(model: nn.Module, size: int, in_chans: int) -> dict[str, tuple[int, int]]:
    """Output size of every conv / pooling module call, by independent forward hooks."""
    kinds = (nn.Conv2d, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
             nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
    seen: dict[str, tuple[int, int]] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[-2:])))
               for name, m in model.named_modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, in_chans, size, size))
    for h in handles:
        h.remove()
    return seen


def _model(name: str) -> tuple[nn.Module, int]:
    info = model_info(name)
    if name == "sequential":  # a declared network: it needs its layers
        layers = [{"conv": {"filters": 4, "padding": "same"}}, {"pool": 2}, {"conv": {"filters": 4}}, "flatten",
                  "dense"]
        return create_model(name, input_size=16, layers=layers), 16
    return create_model(name, num_classes=info.num_classes, input_size=info.input_size), info.input_size


@pytest.mark.parametrize("name", list_models())
def test_shapes_agree_with_the_forward_pass(name):
    model, size = _model(name)
    trace = trace_geometry(model, size)
    assert check_geometry(trace) == []  # formula size == forward size everywhere, nothing unfollowed
    by_name = {r.name: r for r in trace.layers}
    actual = _module_outputs(model, size, 3)
    assert actual, f"{name} has no conv or pooling module"
    missing = sorted(set(actual) - set(by_name))
    assert not missing, f"modules left out of the table: {missing}"
    for module, out in actual.items():
        assert by_name[module].size == out, module
    assert all(r.out[0].rf >= 1 and r.out[0].jump >= 1 for r in trace.layers)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_padding_ceil_mode_reflect_and_strided_slices():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 4, padding="same")          # odd total padding: 1 before, 2 after
            self.b = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.c = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
            self.d = nn.AdaptiveAvgPool2d(3)                    # uneven windows: approximate

        def forward(self, x):
            return self.d(self.c(self.b(self.a(x)))[:, :, 1::2, ::2])

    for size in (9, 10, 13, 16):
        trace = trace_geometry(Odd(), size)
        assert check_geometry(trace) == [], size
        assert any(r.kind == "subsample" for r in trace.layers)
    # 16 px: 'same' 16 -> ceil pool 8 -> 8 -> x[1::2] 4 -> adaptive 3 (4 into 3: uneven windows)
    assert trace.layers[-1].approximate and "~ adaptive pooling" in format_geometry(trace)
    assert [r.size for r in trace.layers if r.kind != "pad"] == [(16, 16), (8, 8), (8, 8), (4, 4), (3, 3)]


def test_unfollowed_ops_are_said_not_skipped():
    class Crop(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.b(torch.nn.functional.interpolate(self.a(x), scale_factor=2))

    trace = trace_geometry(Crop(), 12, in_chans=1)
    assert trace.layers[-1].out is None and trace.notes
    assert check_geometry(trace)  # reported as a problem
    assert "?" in format_geometry(trace) and "note:" in format_geometry(trace)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match="does not fit this network.*--input-size"):
        trace_geometry(create_model("cnn004"), 4)


def _cli(argv: list[str]) -> int:
    from cnnlab.cli.models import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_shapes_command(capsys):
    assert _cli(["shapes", "cnn001a", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cnn001a: input 3 x 64 x 64")
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("features.")}
    # 64 -> conv 62 (rf 3) -> pool 31 (rf 4, jump 2) -> conv 29 (rf 8)
    assert lines["features.conv1"][6:8] == ["62", "3"]
    assert lines["features.pool1"][6:9] == ["31", "4", "2"]
    assert lines["features.conv2"][6:8] == ["29", "8"]
    with pytest.raises(ValueError, match="unknown model"):
        _cli(["shapes", "cnn00"])
