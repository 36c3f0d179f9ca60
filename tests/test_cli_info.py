import subprocess

from engine.cli import SELF_COMMAND


def test_info_prints_levels_and_totals():
    out = subprocess.run(
        [*SELF_COMMAND, "info", "--preset", "paper"], capture_output=True, text=True, check=True
    ).stdout
    assert "total parameters:               7,393,152" in out
    assert "full-rate-equivalent parameters" in out
    assert out.count("\n    ") >= 5  # one row per level


def test_unknown_preset_is_a_clear_error():
    result = subprocess.run([*SELF_COMMAND, "info", "--preset", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr
