"""Screenshots of real cnnlab pages for the docs' gallery (`make gallery`).

Trains a tiny run on a generated two-class image folder (CPU, seconds), writes its report,
an explain page and a probe page, and screenshots each with headless Chromium into --out
(docs/gallery/ by default): report.png, explain.png, probe.png.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, colour in {"warm": (200, 80, 40), "cool": (40, 90, 200)}.items():
        (root / label).mkdir(parents=True)
        for i in range(60):
            pixels = np.clip(np.array(colour) + rng.normal(0, 60, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:02d}.png")
    return root


def cnnlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "cnnlab", *args], check=True, cwd=REPO)


def screenshot(page: Path, png: Path, height: int = 900) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("gallery: no chromium found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--no-first-run", f"--user-data-dir={profile}", "--hide-scrollbars",
                        f"--screenshot={png}", f"--window-size=1200,{height}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {png.relative_to(REPO) if png.is_relative_to(REPO) else png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gallery")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = image_folder(Path(tmp) / "images")
        runs = Path(tmp) / "runs"
        from cnnlab import load_experiment, run_experiment
        cfg = load_experiment(REPO / "recipes" / "004-a.yaml", overrides=[
            "name=gallery", "epochs=4", "batch_size=16", "threads=1", "device=cpu", "data.name=folder",
            f"data.root={data}", "data.image_size=32", "data.folder_split=[36, 12, 12]", "data.val_size=0"])
        run = run_experiment(cfg, runs_dir=runs, quiet=True).run_dir
        screenshot(run / "report.html", out / "report.png")
        cnnlab("explain", str(run), "--image", str(data / "warm" / "00.png"), "--filters", "4", "--steps", "8", "--ig-steps", "4",
               "--out", str(Path(tmp) / "explain"))
        screenshot(sorted((Path(tmp) / "explain").rglob("*.html"))[0], out / "explain.png")
        cnnlab("probe", str(run), "--layer", "pre_logits", "--knn", "1..5", "--svm", "--tsne", "--name", "gallery")
        pages = sorted(p for p in run.rglob("*.html") if "probe" in str(p.relative_to(run)))
        screenshot(pages[0], out / "probe.png")


if __name__ == "__main__":
    main()
