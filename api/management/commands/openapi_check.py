"""``manage.py openapi_check``: the contract check ``make test`` runs.

For every published version, the code's OpenAPI document against the committed ``openapi/<version>.json``:

- the same: passes;
- different, and Optic finds a breaking change: fails, printing the breaking changes. A published
  version never breaks: make the change additive (docs/versioning.md) or make it in a new version;
- different, and nothing breaks (an added operation, field, optional parameter...): fails too, until
  the new document is committed (``manage.py openapi_export``), so every contract change is reviewed.

``--base REF`` also holds the code's document against the copy committed at git revision ``REF``
(``origin/main`` in a pull request's CI), which catches a breaking change committed together with its
regenerated document.
"""

import subprocess
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from api import contract
from api.openapi import CONTRACT_DIR, VERSIONS

ADVICE = {
    "breaking": "A published version never breaks: make the change additive (docs/versioning.md) or make it in "
    "a new version. Do not regenerate the committed document to make this pass.",
    "additive": "Nothing breaks. Commit the new contract: `.venv/bin/python manage.py openapi_export` and "
    "`git add openapi/`.",
    "missing": "Write it with `.venv/bin/python manage.py openapi_export` and commit it.",
}


def _at_revision(ref: str, version: str, scratch: Path) -> Path | None:
    relative = CONTRACT_DIR.relative_to(settings.BASE_DIR) / f"{version}.json"
    shown = subprocess.run(  # noqa: S603
        ["git", "show", f"{ref}:{relative.as_posix()}"],  # noqa: S607
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        return None
    path = scratch / f"{version}-{ref.replace('/', '_')}.json"
    path.write_text(shown.stdout)
    return path


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path)


class Command(BaseCommand):
    help = "Fail when the code's OpenAPI document of a published version differs from openapi/<version>.json."

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=CONTRACT_DIR, help="Where the documents live (openapi/).")
        parser.add_argument("--base", metavar="REF", help="Also check for breaking changes against git revision REF.")

    def handle(self, *args, dir, base, **options):
        started = time.perf_counter()
        failed = []
        try:
            for version in VERSIONS:
                outcomes = [contract.check_version(version, contract_dir=dir)]
                if base:
                    with tempfile.TemporaryDirectory(prefix="contract-") as scratch:
                        baseline = _at_revision(base, version, Path(scratch))
                        if baseline is None:
                            self.stdout.write(f"{version}: not published at {base}; nothing to hold it to there.")
                        else:
                            at_base = contract.check_version(version, baseline=baseline)
                            if at_base.status == "breaking":
                                outcomes.append(at_base)
                for outcome in outcomes:
                    self._report(outcome, dir, base if outcome is not outcomes[0] else None)
                    if outcome.failed:
                        failed.append(outcome)
        except contract.ToolMissing as missing:
            raise CommandError(str(missing)) from None
        seconds = time.perf_counter() - started
        if failed:
            statuses = ", ".join(f"{o.version} {o.status}" for o in failed)
            raise CommandError(f"Contract check failed ({statuses}) in {seconds:.1f} s.")
        self.stdout.write(self.style.SUCCESS(f"Contract check passed for {', '.join(VERSIONS)} in {seconds:.1f} s."))

    def _report(self, outcome: contract.Outcome, dir: Path, base: str | None) -> None:
        against = f"the copy at {base}" if base else _shown(dir / f"{outcome.version}.json")
        if outcome.status == "unchanged":
            self.stdout.write(f"{outcome.version}: the code's document matches {against}.")
            return
        title = {
            "breaking": f"BREAKING: the code's document breaks clients of {outcome.version} ({against}):",
            "additive": f"the code's document differs from {against}, and nothing breaks:",
            "missing": f"{against} is missing:",
        }[outcome.status]
        self.stdout.write(self.style.ERROR(f"{outcome.version}: {title}"))
        self.stdout.write("\n".join(f"    {line}" for line in outcome.lines))
        self.stdout.write(f"  -> {ADVICE[outcome.status]}")
