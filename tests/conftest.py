"""Shared pytest set-up for the test suite: the hypothesis profiles.

Profile ``ci`` (the default) keeps the property tests fast and reproducible: no deadline
(the first call of a kernel may be slow on a busy machine), at most 30 examples per test,
and ``derandomize=True`` so that every run draws the same examples (no example database).
Select another profile with ``HYPOTHESIS_PROFILE=dev pytest ...`` (more examples, random).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=30,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
