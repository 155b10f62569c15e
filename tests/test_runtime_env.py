"""The allocator settings every workflow job inherits."""

from pathlib import Path

from mibench_core.runtime import JOB_MALLOC_ENV, job_environment

ROOT = Path(__file__).resolve().parent.parent


def test_job_environment_sets_the_allocator_and_keeps_a_users_values():
    env = {"MALLOC_TOP_PAD_": "12345", "PATH": "/bin"}
    added = job_environment(env)
    assert env["MALLOC_TOP_PAD_"] == "12345"
    assert "MALLOC_TOP_PAD_" not in added
    assert env["MALLOC_MMAP_THRESHOLD_"] == env["MALLOC_TRIM_THRESHOLD_"] == str(4 << 30)
    assert set(added) == set(JOB_MALLOC_ENV) - {"MALLOC_TOP_PAD_"}


def test_the_snakefile_sets_them_before_any_rule():
    """Jobs inherit the Snakefile's environment; the call must come before the first rule file."""
    text = (ROOT / "Snakefile").read_text()
    assert 0 < text.index("job_environment(os.environ)") < text.index("include:")
