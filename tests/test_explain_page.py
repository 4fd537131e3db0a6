"""`cnnlab explain` end to end on real tiny runs (report_fixtures.real_runs), and the run report's
Grad-CAM section of the most confident mistakes as the pipeline writes it."""
import argparse
import re

import numpy as np
import pytest

from report_fixtures import copy_run, make_tiny_images, real_runs, tiny_experiment

FAST = ["--steps", "6", "--filters", "4", "--ig-steps", "8"]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return real_runs(tmp_path_factory)


def _cli(argv: list[str]) -> int:
    from cnnlab.cli.explain import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _sections(html: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", html)


def test_explain_a_test_image_of_a_run(real, tmp_path, capsys):
    from cnnlab.runs import load_run

    run_dir = copy_run(real.base, tmp_path)
    test = load_run(run_dir).splits.test
    idx, label = int(test.indices[3]), int(test.labels[3])
    assert _cli(["explain", str(run_dir), "--index", str(idx), *FAST]) == 0
    page = run_dir / "explain" / f"test-{idx}" / "explain.html"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(page)
    html = page.read_text()
    assert _sections(html) == ["Image and prediction", "Where the network looked",
                               "Activations of conv layer 1 (features.conv0.conv)",
                               "Filters of conv layer 1 (features.conv0.conv) by gradient ascent", "Conv layers"]
    assert f"test image idx {idx} (row 3 of predictions/test.npz)" in html
    assert f"True class: {['cat', 'dog', 'frog'][label]}" in html
    assert "it rose for 4 of 4 filters" in html
    # the tiny run's one 3x3 'same' conv on 16 px: 16x16 output, receptive field 3 px
    assert "<td>1</td><td>features.conv0.conv</td><td>16x16</td><td>3</td>" in html
    figures = sorted(p.name for p in (page.parent / "figures").iterdir())
    assert figures == ["activations_features_conv0_conv.png", "filters_features_conv0_conv.png", "heatmaps.png"]
    assert all((page.parent / "figures" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    markdown = (page.parent / "explain.md").read_text()
    assert all(f"](figures/{f})" in markdown for f in figures)
    assert html.count("data:image/png;base64,") == 3  # self-contained


def test_explain_a_file_with_a_binary_one_logit_run(real, tmp_path, capsys):
    run_dir = copy_run(real.binary, tmp_path)
    image = real.data / "dog" / "img_000.png"
    out = tmp_path / "page"
    assert _cli(["explain", str(run_dir), "--image", str(image), "--out", str(out), "--layer", "-1", *FAST]) == 0
    html = (out / "explain.html").read_text()
    assert "True class: unknown" in html and "Where the network looked" in html
    assert "Grad-CAM and Grad-CAM++ at conv layer features.conv0.conv" in html and not (run_dir / "explain").exists()
    probabilities = [float(p) for p in re.findall(r"<td>(0\.\d{4}|1\.0000)</td>", html)]
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-3  # [1 - p, p] of the sigmoid


def test_explain_errors_name_the_fix(real):
    from cnnlab.runs import load_run

    idx = int(load_run(real.base).splits.test.indices[0])
    with pytest.raises(ValueError, match="--index IDX .* or --image PATH"):
        _cli(["explain", str(real.base)])
    with pytest.raises(ValueError, match=r"unknown conv layer 'conv9'.*1 features\.conv0\.conv"):
        _cli(["explain", str(real.base), "--index", str(idx), "--layer", "conv9", "--out", "/nonexistent"])
    with pytest.raises(ValueError, match="no test image has idx 99999.*holds 12 images"):
        _cli(["explain", str(real.base), "--index", "99999"])
    with pytest.raises(ValueError, match="no val split"):
        _cli(["explain", str(real.binary), "--index", "0", "--split", "val"])


def test_gradcam_section_of_a_binary_run(real):
    from cnnlab.explain import gradcam_section
    from cnnlab.runfolder import read_predictions
    from cnnlab.runs import load_run

    run = load_run(real.binary)
    predictions = read_predictions(real.binary)["test"]
    assert predictions.probs.shape[1] == 1
    wrong = int(((predictions.probs[:, 0] > 0.5).astype(int) != predictions.labels).sum())
    section = gradcam_section(run.model, run.normalizer, run.splits.test.images, predictions.probs,
                              predictions.labels, run.splits.classes, predictions.indices, count=3)
    table = section.blocks[-1]
    assert len(table.rows) == min(3, wrong) and wrong > 0
    assert all(row[1] != row[2] for row in table.rows)  # true != predicted
    confidences = [float(row[3]) for row in table.rows]
    assert confidences == sorted(confidences, reverse=True)  # the surest mistakes first
    with pytest.raises(ValueError, match="one image per prediction row"):
        gradcam_section(run.model, run.normalizer, run.splits.test.images[:2], predictions.probs, predictions.labels,
                        run.splits.classes)


def test_the_pipelines_report_shows_gradcam_of_the_worst_mistakes(tmp_path):
    from cnnlab.explain.report_section import TITLE
    from cnnlab.pipeline import run_experiment

    data = make_tiny_images(tmp_path / "images")
    logged = []
    result = run_experiment(tiny_experiment(data), runs_dir=tmp_path / "runs", quiet=True, log=logged.append)
    titles = _sections((result.run_dir / "report.html").read_text())
    # write_run_report(extra_sections=...) puts it right after the examples
    assert titles.index(TITLE) == titles.index("Best and worst examples") + 1, logged
    assert (result.run_dir / "figures" / "gradcam_wrong.png").is_file()
    assert "figures/gradcam_wrong.png" in (result.run_dir / "report.md").read_text()
    assert not [line for line in logged if "warning" in line]


def test_a_failing_gradcam_section_never_costs_the_report(real, tmp_path, monkeypatch):
    import cnnlab.explain.report_section as report_section
    from cnnlab.pipeline import ReportWriter
    from cnnlab.runs import load_run

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(report_section, "gradcam_section", broken)
    run_dir = copy_run(real.base, tmp_path)
    run = load_run(run_dir)
    logged = []
    writer = ReportWriter(log=logged.append)
    writer.on_train_begin({"run_dir": str(run_dir), "model": run.model})
    writer.on_train_end({"run_dir": str(run_dir), "status": "completed", "data": run.splits})
    assert logged == ["warning: no Grad-CAM section in the report: out of memory"]
    titles = _sections((run_dir / "report.html").read_text())
    assert "Best and worst examples" in titles and report_section.TITLE not in titles
    assert np.all([not p.name.startswith("gradcam") for p in (run_dir / "figures").iterdir()])
