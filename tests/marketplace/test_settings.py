"""Settings come from the environment; each case runs in a fresh interpreter with its own environment."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Variables each case sets itself; the suite's own (CI points DATABASE_URL and REDIS_URL at servers)
# must not leak into the child.
CONFIGURED = {
    "OIDC_RSA_PRIVATE_KEY",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


PRODUCTION_ENV = {
    "OIDC_RSA_PRIVATE_KEY": _rsa_pem(),
    "DEBUG": "0",
    "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-enough-0123456789abcdef",
    "ALLOWED_HOSTS": "portal.example.com",
}


def run(args, env_overrides, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURED}
    env.update({"VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "marketplace.settings", **env_overrides})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = run(["manage.py", "check"], env, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_an_oidc_key(tmp_path):
    env = {**PRODUCTION_ENV, "OIDC_RSA_PRIVATE_KEY": ""}
    result = run(["manage.py", "check"], env, tmp_path)
    assert result.returncode != 0
    assert "OIDC_RSA_PRIVATE_KEY" in result.stderr


def test_development_defaults_warn_loudly(tmp_path):
    result = run(["manage.py", "check"], {"DEBUG": "1"}, tmp_path)
    assert result.returncode == 0
    assert "fell back to development values" in result.stderr


def print_setting(expression, env, tmp_path):
    code = f"import django; django.setup(); from django.conf import settings; print(({expression},))"
    result = run(["-c", code], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_unset_database_url_means_sqlite_under_var(tmp_path):
    assert print_setting("str(settings.DATABASES['default']['NAME'])", {"DEBUG": "1"}, tmp_path) == repr(
        (str(tmp_path / "db.sqlite3"),)
    )


def test_database_url_selects_postgresql(tmp_path):
    env = {"DEBUG": "1", "DATABASE_URL": "postgres://u:p@db.internal:5433/market"}
    engine = print_setting(
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['HOST']", env, tmp_path
    )
    assert engine == "('django.db.backends.postgresql', 'db.internal')"


def test_redis_url_switches_cache_and_broker(tmp_path):
    unset = print_setting("settings.CACHES['default']['BACKEND'], settings.CELERY_BROKER_URL", {"DEBUG": "1"}, tmp_path)
    assert unset == "('django.core.cache.backends.locmem.LocMemCache', 'filesystem://localhost//')"
    env = {"DEBUG": "1", "REDIS_URL": "redis://cache.internal:6379/2"}
    set_ = print_setting("settings.CACHES['default']['BACKEND'], settings.CELERY_BROKER_URL", env, tmp_path)
    assert set_ == "('django_redis.cache.RedisCache', 'redis://cache.internal:6379/2')"


def test_celery_acks_late_and_visibility_timeout_outlasts_countdowns(tmp_path):
    env = {"DEBUG": "1", "REDIS_URL": "redis://cache.internal:6379/2"}
    out = print_setting(
        "settings.CELERY_TASK_ACKS_LATE, settings.CELERY_TASK_REJECT_ON_WORKER_LOST, "
        "settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] > 24 * 3600",
        env,
        tmp_path,
    )
    assert out == "(True, True, True)"


def test_a_bad_boolean_is_an_error_not_a_guess(tmp_path):
    result = run(["manage.py", "check"], {"DEBUG": "maybe"}, tmp_path)
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr
