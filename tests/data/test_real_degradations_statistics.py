"""keras-sr's Real-ESRGAN pairs against the PyTorch reference pipeline's
(`benchmarks/torch_reference.py: realesrgan_pair`, written from reading Real-ESRGAN): 300
pairs each from the bundled photos, three measures per pair (PSNR against a clean bicubic LR, a
noise estimate, a sharpness measure), compared by a two-sample Kolmogorov-Smirnov test."""

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("torch", reason="PyTorch is not installed (pip install keras-sr[torch]); "
                                    "CI installs it")
pytest.importorskip("scipy", reason="the KS test needs scipy; CI installs it")


def test_pair_statistics_match_the_reference_pipeline():
    from benchmarks.real_degradations import compare_with_reference

    # p > 0.01 for each measure: at 300 pairs a side, a shift of the distributions of
    # 0.13 in their CDFs (for example a noise-strength bug like the gray-Poisson one, or
    # degrading the unsharpened crop) fails it; both sides are seeded, so the result is fixed.
    for name, (statistic, p_value, ours, theirs) in compare_with_reference(300).items():
        assert p_value > 0.01, (name, statistic, p_value, ours, theirs)
