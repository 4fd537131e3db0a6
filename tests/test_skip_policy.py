"""CI's skip allow-list (tests/skip_allowlist.txt, tests/skip_policy.py): which skip reasons pass under CI=true."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import skip_policy

ALLOWED = [   # the reasons of this repository's allowed skips, as the tests write them
    "needs CUDA to build a generator on another device",
    "benchmarks/.venv-keras is absent (see benchmarks/README.md)",
    "tensorboard not installed: pip install tensorboard",
    "mlflow not installed: pip install mlflow-skinny",
    "tensorboard is installed here; the test needs it absent",
    "vgg11_bn without batch norm (export 2-6 s); CNNLAB_EXPORT_ALL_MODELS=1 runs it",
]
NOT_ALLOWED = [  # what CI installs or has beside the clone: a skip here is a broken install
    "headless Chromium absent: apt-get install -y chromium",
    "no PostgreSQL configured: run `bash .ci/postgres.sh` (it writes /tmp/cnnlab-postgres.env) "
    "or set CNNLAB_TEST_POSTGRES_URL",
    "PostgreSQL driver missing: pip install 'psycopg[binary]'",
    "bundled datasets not found at /x/shared/datasets: the real-CIFAR tests need them",
    "the reports' text (../shared/seeds) is not here",
    "pip install 'cnnlab[export]' for the ONNX tests",
    "cannot mount a small tmpfs here (needs root): mount: permission denied",
    "this torch build has no torch.distributed with gloo, which DDP on CPU needs",
    "make is not installed",
    "a reason nobody wrote yet",
]


def report(nodeid, reason, **extra):
    return SimpleNamespace(nodeid=nodeid, skipped=True, longrepr=("f.py", 1, f"Skipped: {reason}"), **extra)


@pytest.mark.parametrize("reason", ALLOWED)
def test_the_allowed_reasons_match(reason):
    assert skip_policy.classify([report("t", reason)], skip_policy.load_allowlist())[0].allowed


@pytest.mark.parametrize("reason", NOT_ALLOWED)
def test_other_reasons_do_not(reason):
    assert not skip_policy.classify([report("t", reason)], skip_policy.load_allowlist())[0].allowed


def test_every_pattern_needs_a_comment(tmp_path):
    bad = tmp_path / "allow.txt"
    bad.write_text("# fine\n^a\n\n^b\n")
    with pytest.raises(ValueError, match=r"allow.txt:4: '\^b' has no comment"):
        skip_policy.load_allowlist(bad)


def test_xfails_and_passes_are_not_skips():
    reports = [report("a", "x", wasxfail="known"), SimpleNamespace(nodeid="b", skipped=False, longrepr=None),
               report("c", "needs CUDA here")]
    assert [s.test for s in skip_policy.classify(reports, skip_policy.load_allowlist())] == ["c"]


def test_a_disallowed_skip_fails_a_ci_run_and_the_log_ends_with_the_table(tmp_path):
    """A real pytest session under CI=true: one allowed skip passes, one Chromium-like skip fails the run."""
    tests = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text(f"import sys\nsys.path.insert(0, {str(tests)!r})\n"
                                          f"from skip_policy import pytest_sessionfinish, pytest_unconfigure\n")
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_gpu():\n    pytest.skip('needs CUDA for this')\n"
        "def test_browser():\n    pytest.skip('headless Chromium absent: apt-get install -y chromium')\n"
        "def test_ok():\n    pass\n")
    env = {"CI": "true", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
                               "--rootdir", str(tmp_path), str(tmp_path)], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)

    proc = run()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    tail = proc.stdout.strip().splitlines()[-4:]
    assert tail[0].startswith("allowed") and tail[1].startswith("yes") and "test_gpu" in tail[1]
    assert tail[2].startswith("NO") and "test_browser" in tail[2] and "Chromium absent" in tail[2]
    assert "1 skip(s) not on skip_allowlist.txt: the run FAILS" in tail[3]
    env["CI"] = "false"
    assert run().returncode == 0
