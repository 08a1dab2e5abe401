"""Benchmark settings: production settings plus the benchmark-only routes (bench/urls.py)."""

from marketplace.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# Measure (b) sends thousands of requests past a quota on purpose; Django's warning for each 429
# would only bury the figures.
LOGGING["loggers"]["django.request"] = {"level": "ERROR"}  # noqa: F405
