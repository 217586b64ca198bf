import subprocess
import sys


def test_fit_builds_the_default_generator_and_says_training_is_missing():
    result = subprocess.run([sys.executable, "-m", "training.fit"], capture_output=True,
                            text=True, timeout=300)
    # It must not pretend: no success status and a plain statement on stderr.
    assert result.returncode == 1
    assert "Built RRDBNet x4: 23 blocks, 64 features, 16,697,987 parameters." in result.stdout
    assert "training is not implemented yet" in result.stderr


def test_fit_rejects_unknown_arguments():
    result = subprocess.run([sys.executable, "-m", "training.fit", "--bogus"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "--bogus" in result.stderr
