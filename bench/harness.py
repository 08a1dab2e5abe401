"""Shared machinery of the benchmarks: a production-like server and a load generator.

Each benchmark starts gunicorn (DEBUG off) against PostgreSQL and Redis when DATABASE_URL and
REDIS_URL are set (they should be, to measure anything meaningful), with ``bench.settings`` so the
benchmark's extra routes (the same views with the checks off) exist only here. Load comes from wrk
(Debian's package) on loopback; bounded in time, it stops by itself.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def unbounded_quotas() -> dict:
    """Rate-quota overrides under which a benchmark's organization is never refused: the limiter still
    counts every request (its cost is measured), its quotas just never bind."""
    from partners.tiers import ENDPOINT_GROUPS, QUOTA_KEYS

    return {group: dict.fromkeys(QUOTA_KEYS, 10**12) for group in ENDPOINT_GROUPS}


def bench_env(**extra) -> dict:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/marketplace_bench")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/2")
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdefghijklmnop",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            # The bench apps are sandbox apps, whose requests certification traces: one INSERT each,
            # which would be measured by every bench. bench/sandbox_trace_check.py measures it alone.
            "SANDBOX_TRACE": "0",
        }
    )
    if not env.get("OIDC_RSA_PRIVATE_KEY"):
        key = ROOT / "var" / "oidc-dev-key.pem"
        if not key.exists():
            sys.path.insert(0, str(ROOT))
            from marketplace.oidc_key import load_or_create

            load_or_create(ROOT / "var")
        env["OIDC_RSA_PRIVATE_KEY"] = key.read_text()
    env.update(extra)
    return env


def ensure_database(env: dict) -> None:
    url = env["DATABASE_URL"]
    if url.startswith("postgres"):
        name = url.rsplit("/", 1)[1]
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], capture_output=True, check=False)
    manage("migrate", "--noinput", env=env)


def manage(*args, env: dict) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(env: dict, *, workers: int = 2):
    port = free_port()
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "marketplace.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)  # noqa: S310 - loopback only
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("gunicorn did not start")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def wrk(url: str, *, seconds: int = 10, connections: int = 16, threads: int = 2, headers=()) -> dict:
    """Requests per second and latency percentiles of ``url`` under load."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        args += ["-H", header]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", output).group(1)) for p in ("50", "90", "99")}
    return {
        "rps": rps,
        "requests": requests,
        "latency_ms": latency,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def report(title: str, figures: dict) -> None:
    print(f"\n== {title}")
    print(json.dumps(figures, indent=2))


def throughput_rounds(on_base: str, off_base: str, path: str, *, seconds: int, rounds: int, headers=()) -> list:
    """Alternate wrk runs of ``path`` against two servers, after a warm-up of each, so that whatever else
    the machine does slows both sides of a round alike. Returns ``(on rps / off rps, on, off)`` per
    round, lowest ratio first; every response of both must be a 2xx."""
    for base in (on_base, off_base):
        wrk(f"{base}{path}", seconds=2, headers=headers)  # warm-up
    found = []
    for _ in range(rounds):
        on = wrk(f"{on_base}{path}", seconds=seconds, headers=headers)
        off = wrk(f"{off_base}{path}", seconds=seconds, headers=headers)
        assert on["non_2xx"] == 0 and off["non_2xx"] == 0, (on, off)
        found.append((on["rps"] / off["rps"], on, off))
    return sorted(found, key=lambda r: r[0])
