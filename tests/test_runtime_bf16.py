"""Whether the CPU has bf16 arithmetic, read from /proc/cpuinfo's flags; a bf16 run on a CPU
without it says at its start that it will train slower than fp32."""
import pytest

from cnnlab.train import runtime
from cnnlab.train.experiment import load_experiment
from cnnlab.train.loop import train
from cnnlab.train.runtime import cpu_has_native_bf16

from engine_helpers import REPO, tiny_overrides


def cpuinfo(tmp_path, flags_line):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\n{flags_line}\n\nprocessor\t: 1\n")
    return path


def test_x86_and_arm_flags_say_whether_bf16_is_native(tmp_path):
    assert cpu_has_native_bf16(cpuinfo(tmp_path, "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni")) is True
    assert cpu_has_native_bf16(cpuinfo(tmp_path, "flags\t\t: fpu sse2 avx2 amx_tile amx_bf16")) is True
    assert cpu_has_native_bf16(cpuinfo(tmp_path, "Features\t: fp asimd bf16 i8mm")) is True
    assert cpu_has_native_bf16(cpuinfo(tmp_path, "flags\t\t: fpu sse2 avx2 avx512f avx512bw")) is False


def test_unknown_when_there_is_no_cpuinfo_or_no_flags_line(tmp_path):
    assert cpu_has_native_bf16(tmp_path / "missing") is None
    assert cpu_has_native_bf16(cpuinfo(tmp_path, "bogomips\t: 4000")) is None


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_run_notes_emulated_bf16_only_where_the_cpu_lacks_it(native, tiny_cifar, tmp_path, monkeypatch):
    # The branch depends on this machine's CPU: the flag reader (tested above) is set to each answer.
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    lines = []
    cfg = load_experiment(REPO / "recipes" / "004-a.yaml", tiny_overrides(epochs=1, precision="bf16"))
    result = train(cfg, tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lines.append)
    assert result.status == "completed"
    noted = [line for line in lines if "autocast emulates them and trains slower than fp32" in line]
    assert len(noted) == (0 if native else 1)
    if noted:
        assert "precision=fp32" in noted[0]
