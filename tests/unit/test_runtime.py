"""Process helpers: memory checks, logging of uncaught errors, progress lines, timing."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from tardiff.runtime import check_memory, measured, progress, setup_logging


def test_check_memory_fails_naming_the_stage_when_over_the_limit(caplog):
    with pytest.raises(MemoryError, match=r"influence \(data\) needs an estimated 1500 MiB.* 1000"):
        check_memory(1500, 1000, "influence (data)")
    with caplog.at_level(logging.INFO, logger="tardiff.runtime"):
        check_memory(999.6, 1000, "classifier")  # within the limit: no error
        check_memory(10**9, None, "diffusion training")  # no limit
    assert "classifier: estimated peak memory 1000 MiB of 1000 MiB allowed" in caplog.text
    assert "diffusion training: estimated peak memory" in caplog.text


@pytest.fixture()
def restore_logging():
    """Undo ``setup_logging``: root handlers and level, and ``sys.excepthook``."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = hook


def test_setup_logging_writes_uncaught_errors_to_the_log(tmp_path, restore_logging):
    log_file = tmp_path / "job.log"
    log = setup_logging(str(log_file))
    assert sys.excepthook is not sys.__excepthook__
    log.info("started")
    try:
        raise RuntimeError("cohort has no stays")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert "tardiff: started" in text
    assert "CRITICAL tardiff: failed: RuntimeError: cohort has no stays" in text
    assert "Traceback (most recent call last)" in text
    assert 'raise RuntimeError("cohort has no stays")' in text


def test_setup_logging_without_file_keeps_the_excepthook(restore_logging):
    hook = sys.excepthook
    setup_logging()
    assert sys.excepthook is hook


def test_progress_yields_everything_and_logs_the_end(caplog):
    with caplog.at_level(logging.INFO, logger="tardiff.runtime"):
        items = list(progress(iter("abcd"), total=4, desc="sampling", unit="batch"))
    assert items == ["a", "b", "c", "d"]
    lines = [r.getMessage() for r in caplog.records if r.name == "tardiff.runtime"]
    assert len(lines) == 1  # every_s (30 s) has not passed: only the final line
    assert lines[0].startswith("sampling: 4/4 batch (100%)") and "left ~" in lines[0]


def test_measured_reports_wall_time_and_memory():
    with measured() as watch:
        time.sleep(0.01)
    assert watch.wall_s >= 0.01 and watch.peak_rss_mb > 0


def test_data_jobs_import_without_torch():
    """envs/data.yaml has no torch: the demo and extraction adapters must not need it."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import tardiff.config, tardiff.demo, tardiff.extract, tardiff.layout, tardiff.provenance\n"
        "import tardiff.runtime, tardiff.settings\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
