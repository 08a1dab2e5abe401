"""Benchmark settings: production settings plus the benchmark-only routes (bench/urls.py)."""

from marketplace.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
