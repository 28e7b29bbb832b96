"""Hypothesis profiles: a modest number of examples by default (CI runs on 2 cores), more with
``HYPOTHESIS_PROFILE=thorough``."""

import atexit
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# Nothing left in the working copy: Hypothesis' caches go to a temporary folder, and the
# derandomised runs need no example database.
_HOME = tempfile.mkdtemp(prefix="titans-seq-hypothesis-")
set_hypothesis_home_dir(_HOME)
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=500, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# `make test-fast` (pytest -m fast): a subset that touches every floor — the memory op against
# its reference, attention, the data readers, the forecasting interface, save/load, the
# messages and the architecture rules — in about a minute; `make test` runs everything.
FAST_MODULES = ("memory/test_memory_scan.py", "blocks/test_attention.py",
                "forecasting/test_frames.py", "forecasting/test_interface.py",
                "classification/test_kmers.py", "dna/test_dna_readers.py",
                "test_architecture.py", "test_messages.py", "test_persistence.py",
                "test_nab_scoring.py", "test_metrics.py", "test_baselines.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "fast: part of the quick subset (make test-fast)")


def pytest_collection_modifyitems(config, items):
    import pytest
    root = os.path.dirname(__file__)
    for item in items:
        if os.path.relpath(str(item.fspath), root) in FAST_MODULES:
            item.add_marker(pytest.mark.fast)
