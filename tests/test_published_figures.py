"""Every figure in README.md and docs/ is generated from committed results, and up to date.

Figures live between ``<!-- figures:NAME:begin/end -->`` markers that ``benchmarks/publish.py``
fills from the JSON the benchmark and example scripts wrote. Outside the markers (and outside
code, math and links), any number with a unit of time, size, decibels, percent or speed-up, and
any decimal number, counts as a figure: it must be listed in ALLOWED below with the reason it is
not a measurement (a setting, a constant, a version, a bound a test enforces).
"""
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import publish  # noqa: E402

UNIT = r"(?:µs|ms|s|min|minutes|MB|GB|KB|kB|dB|%|x|×)"
FIGURE = re.compile(rf"(?<![\w.^])\d+(?:\.\d+)?\s?{UNIT}(?!\w)|(?<![\w.^])\d+\.\d+(?!\w|\.\d)")
NOT_PROSE = [
    re.compile(r"```.*?```", re.S),                # code blocks
    publish.MARKER,                                 # generated figures
    re.compile(r"<!--.*?-->", re.S),               # comments
    re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S),  # maths
    re.compile(r"`[^`\n]*`"),                      # inline code
    re.compile(r"\]\([^)]*\)"),                    # link targets
]

# (document, figure) -> why it is not a measured result.
ALLOWED = {
    ("README.md", "3.9"): "the minimum Python version",
    ("README.md", "0.21"): "2π/ω0 for ω0 = 30, a constant",
    ("README.md", "0.01"): "a loss weight (setting)",
    ("README.md", "2510.22473"): "an arXiv identifier",
    ("README.md", "2512.20531"): "an arXiv identifier",
    ("docs/cuda.md", "3.35"): "the H100 SXM datasheet bandwidth in TB/s (a constant)",
    ("docs/cuda.md", "4.8"): "the H200 datasheet bandwidth in TB/s (a constant)",
    ("docs/cuda.md", "2.0"): "datasheet bandwidth x assumed latency (arithmetic on constants)",
    ("docs/cuda.md", "2.7 MB"): "datasheet bandwidth x assumed latency (arithmetic on constants)",
    ("docs/cuda.md", "2.9"): "datasheet bandwidth x assumed latency (arithmetic on constants)",
    ("docs/cuda.md", "3.8 MB"): "datasheet bandwidth x assumed latency (arithmetic on constants)",
    ("docs/cuda.md", "20 KB"): "the per-SM share of the bytes in flight above (arithmetic)",
    ("docs/cuda.md", "29 KB"): "the per-SM share of the bytes in flight above (arithmetic)",
    ("docs/cuda.md", "37 KB"): "loads in flight per thread (read off the SASS) x resident threads",
    ("docs/cuda.md", "48 KB"): "loads in flight per thread (read off the SASS) x resident threads",
    ("docs/cuda.md", "64 KB"): "loads in flight per thread (read off the SASS) x resident threads",
    ("docs/cuda.md", "4 x"): "part of the formula 4 x D (coordinates per edge)",
    ("docs/cuda.md", "60%"): "the bandwidth target for SirenPose (a criterion)",
    ("docs/cuda.md", "13.0"): "the CUDA version (a version)",
    ("docs/distributed.md", "30 s"): "the timeout of every collective in the tests (setting)",
    ("docs/cuda.md", "256 MB"): "the data size above which a bandwidth fraction is reported (a rule)",
    ("docs/examples.md", "0.01"): "a loss weight (setting)",
    ("docs/examples.md", "0.02"): "the initial point-cloud noise (setting)",
    ("docs/examples.md", "0.1"): "a loss weight (setting)",
    ("docs/examples.md", "0.1 ×"): "the PCK threshold (setting)",
    ("docs/examples.md", "0.21"): "2π/ω0 for ω0 = 30, a constant",
    ("docs/examples.md", "0.5"): "a noise level in pixels (setting)",
    ("docs/examples.md", "1.3"): "the phase offset the detector noise implies (derived from settings)",
    ("docs/examples.md", "1.5"): "the SSIM window's sigma (setting)",
    ("docs/examples.md", "1.5 %"): "the scene's detector noise (setting)",
    ("docs/examples.md", "1.55"): "the synthetic figure's height, a scene constant",
    ("docs/examples.md", "100×"): "the RPE convention of other papers (a definition)",
    ("docs/examples.md", "2x"): "part of the formula x[t+1] - 2x[t] + x[t-1]",
    ("docs/examples.md", "3 %"): "the scene's outlier fraction (setting)",
    ("docs/examples.md", "3.8"): "the detector noise in pixels, 0.015 x 256 (setting)",
    ("docs/examples.md", "30 %"): "the jitter target (a criterion)",
    ("docs/examples.md", "0.5 dB"): "the protocol's PSNR admissibility bound (a criterion)",
    ("docs/examples.md", "8 %"): "the scene's dropped-point fraction (setting)",
}


def _documents():
    return {os.path.relpath(p, REPO): p for p in publish.documents()}


def _prose(text: str) -> str:
    for pattern in NOT_PROSE:
        text = pattern.sub(" ", text)
    return text


def figures_outside_markers():
    """{(document, figure)} for every figure-like token outside the generated blocks."""
    found = set()
    for name, path in _documents().items():
        with open(path) as f:
            for m in FIGURE.finditer(_prose(f.read())):
                found.add((name, m.group(0)))
    return found


def test_every_marked_figure_matches_its_results():
    assert publish.stale() == [], "run: python benchmarks/publish.py"


def test_markers_are_paired_and_name_known_figures():
    known = set(publish.blocks())
    used = set()
    for name, path in _documents().items():
        with open(path) as f:
            text = f.read()
        begins = re.findall(r"<!-- figures:([\w.-]+):begin -->", text)
        ends = re.findall(r"<!-- figures:([\w.-]+):end -->", text)
        assert sorted(begins) == sorted(ends), f"{name}: unpaired figure markers"
        assert len(publish.MARKER.findall(text)) == len(begins), f"{name}: nested or crossed markers"
        assert set(begins) <= known, f"{name}: unknown figures {set(begins) - known}"
        used |= set(begins)
    assert used == known, f"figures generated but published nowhere: {known - used}"


def test_no_unbacked_figure_outside_the_markers():
    unbacked = sorted(figures_outside_markers() - set(ALLOWED))
    assert not unbacked, ("figures outside the generated blocks (generate them from results, or "
                          f"list them in ALLOWED with the reason they are not results): {unbacked}")


def test_every_allowed_figure_is_still_there():
    assert not set(ALLOWED) - figures_outside_markers(), "remove the stale ALLOWED entries"


def test_a_changed_figure_is_detected(tmp_path):
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    block = re.search(r"<!-- figures:perf-table:begin -->(.*?)<!-- figures:perf-table:end -->", text, re.S)
    assert block and "x |" in block.group(1)
    edited = tmp_path / "README.md"
    edited.write_text(text.replace(block.group(1), block.group(1).replace("x |", "0x |", 1)))
    assert publish.stale([str(edited)]) == [os.path.relpath(str(edited), REPO)]
    assert publish.render(edited.read_text(), publish.blocks()) == text


def test_a_figure_outside_the_markers_is_detected():
    assert FIGURE.findall(_prose("ours takes 21 µs, or 2.6 vs 15.3 px, 7.5x")) == \
        ["21 µs", "2.6", "15.3", "7.5x"]
    assert FIGURE.findall(_prose("`12 ms` $$0.5$$ <!-- figures:a:begin -->3 s<!-- figures:a:end -->")) == []


@pytest.mark.parametrize("name", sorted(_documents()))
def test_image_links_resolve(name):
    path = _documents()[name]
    with open(path) as f:
        links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", f.read())
    for link in links:
        assert os.path.exists(os.path.join(os.path.dirname(path), link)), f"{name}: {link}"


def test_example_results_have_one_layout_per_seed_and_small_images():
    root = os.path.join(REPO, "examples", "results")
    seeds = sorted(d for d in os.listdir(root) if re.fullmatch(r"seed\d+", d))
    assert seeds, "no examples/results/seed{N}/"
    layouts = {d: sorted(os.listdir(os.path.join(root, d))) for d in seeds}
    assert len({tuple(v) for v in layouts.values()}) == 1, layouts
    for dirpath, _, files in os.walk(root):
        for f in files:
            size = os.path.getsize(os.path.join(dirpath, f))
            if f.endswith(".gif"):
                assert size <= 200 * 1024, f"{f}: {size} bytes"
            if f.endswith(".png"):
                assert size <= 64 * 1024, f"{f}: {size} bytes (a palette PNG plot is ~30 KB)"


def test_the_clean_track_command_sets_every_detector_error_to_zero():
    sys.path.insert(0, os.path.join(REPO, "examples"))
    import train_keypoints
    args = train_keypoints.parse_args(["--clean"])
    assert [getattr(args, k) for k in train_keypoints.DETECTOR_ARGS] == [0.0, 0.0, 0.0]
    with pytest.raises(SystemExit):
        train_keypoints.parse_args(["--clean", "--detector-noise", "0.01"])
