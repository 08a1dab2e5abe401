"""``manage.py openapi_export [VERSION ...] [--check]``: write (or check) the committed OpenAPI documents.

Writes ``openapi/<version>.json`` for every published version (or those named) as the code describes it,
in a stable form (sorted keys, fixed indent), so a commit's diff is its contract change.

It refuses to write a change that breaks a published version (Optic judges, see ``api.contract``):
make the change additive, or make it in a new version. ``--allow-breaking`` overrides that, for a
version no partner can call yet. ``--check`` writes nothing and exits 1, with a summary, when a
committed document differs from the code's.
"""

import json
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from api import contract
from api.openapi import CONTRACT_DIR, VERSIONS, render, schema_for


class Command(BaseCommand):
    help = "Write openapi/<version>.json from the code (or, with --check, say whether they differ)."

    def add_arguments(self, parser):
        parser.add_argument("versions", nargs="*", metavar="VERSION", help=f"Default: all ({', '.join(VERSIONS)}).")
        parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 when a document differs.")
        parser.add_argument(
            "--allow-breaking",
            action="store_true",
            help="Write even a breaking change (only for a version no partner can call yet).",
        )
        parser.add_argument("--dir", type=Path, default=CONTRACT_DIR, help="Where the documents live (openapi/).")

    def handle(self, *args, versions, check, allow_breaking, dir, **options):
        unknown = sorted(set(versions) - set(VERSIONS))
        if unknown:
            raise CommandError(f"Unknown version(s): {', '.join(unknown)}. Published: {', '.join(VERSIONS)}.")
        dir.mkdir(parents=True, exist_ok=True)
        stale = []
        for version in versions or VERSIONS:
            target = dir / f"{version}.json"
            text = render(schema_for(version, fresh=True))
            old = target.read_text() if target.exists() else None
            if old == text:
                self.stdout.write(f"{version}: {target} is up to date.")
                continue
            if check:
                stale.append(version)
                self.stdout.write(f"{version}: {target} differs from the code's document:")
                summary = contract.summarize(json.loads(old), json.loads(text)) if old else ["(the file is missing)"]
                self.stdout.write("\n".join(f"    {line}" for line in summary))
                continue
            if old is not None and not allow_breaking:
                self._refuse_breaking(version, target, text)
            target.write_text(text)
            self.stdout.write(self.style.SUCCESS(f"{version}: wrote {target}."))
        if stale:
            raise CommandError(
                f"The committed OpenAPI document of {', '.join(stale)} is not the code's. If the change is "
                "additive, run `manage.py openapi_export` and commit openapi/; `manage.py openapi_check` says "
                "whether it is."
            )

    def _refuse_breaking(self, version: str, target: Path, text: str) -> None:
        with tempfile.TemporaryDirectory(prefix="contract-") as scratch:
            generated = Path(scratch) / target.name
            generated.write_text(text)
            try:
                verdict = contract.breaking_changes(target, generated)
            except contract.ToolMissing as missing:
                raise CommandError(f"{missing}\n(or pass --allow-breaking to write without the check)") from None
        if verdict.breaking:
            raise CommandError(
                f"Not written: the change breaks clients of published version {version}.\n{verdict.report}\n"
                "Make it additive (docs/versioning.md), or make it in a new version."
            )
