"""The published contract: each version's committed OpenAPI document, held against the code.

Two questions, two answers:

- *Does the code still describe the committed document?* A byte comparison of ``render(schema_for(v))``
  with ``openapi/<v>.json`` (``summarize`` says what differs in words a reviewer can follow).
- *Would the difference break a client?* Not judged here: Optic (``@useoptic/optic``, pinned in
  ``tools/contract/package.json`` and installed with ``npm ci``) runs its breaking-change rules on the
  committed document (before) and the code's (after), offline. Its rules match docs/versioning.md:
  removing an operation, a response status, a response property or an enum value, adding a required
  parameter or request property, changing a type, are breaking; adding operations, optional parameters,
  optional request properties and response properties is not.
"""

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from api.openapi import committed_path, render, schema_for

TOOL_DIR = Path(settings.BASE_DIR) / "tools" / "contract"
OPTIC = TOOL_DIR / "node_modules" / ".bin" / "optic"
TOOL_TIMEOUT_SECONDS = 180
INSTALL_HINT = "cd tools/contract && npm ci --no-audit --no-fund   (make contract does it)"
# Offline and quiet: no telemetry, no update check, no colours in what we print.
TOOL_ENV = {"OPTIC_TELEMETRY_LEVEL": "off", "NO_UPDATE_NOTIFIER": "1", "FORCE_COLOR": "0", "NO_COLOR": "1"}


class ToolMissing(RuntimeError):
    pass


@dataclass
class Verdict:
    breaking: bool
    report: str  # what the tool printed, trimmed


def tool_available() -> bool:
    return OPTIC.exists() and shutil.which("node") is not None


def breaking_changes(before: Path, after: Path) -> Verdict:
    """Optic's judgement of the change from ``before`` to ``after`` (two OpenAPI files)."""
    if not tool_available():
        raise ToolMissing(f"The OpenAPI diff tool is not installed (needs node and {OPTIC}): {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="contract-") as home:
        env = {**os.environ, **TOOL_ENV, "HOME": home, "XDG_CONFIG_HOME": home}
        # A directory of its own, so no optic.yml or git repository around the files changes the rules.
        completed = subprocess.run(  # noqa: S603
            [str(OPTIC), "diff", str(before.resolve()), str(after.resolve()), "--check"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    output = "\n".join(
        line.rstrip()
        for line in (completed.stdout + completed.stderr).splitlines()
        if line.strip() and "--web flag" not in line
    )
    if completed.returncode == 0:
        return Verdict(breaking=False, report=output)
    if "breaking change" in output.lower():
        return Verdict(breaking=True, report=output)
    raise RuntimeError(f"The OpenAPI diff tool failed (exit {completed.returncode}):\n{output}")


# --- readable differences ------------------------------------------------------------------------------


def _operations(document: dict) -> dict[str, dict]:
    return {
        f"{method.upper()} {path}": operation
        for path, operations in document.get("paths", {}).items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
    }


def _refs(node) -> set[str]:
    """The ``#/components/...`` references in ``node``, as ``kind.name``."""
    if isinstance(node, dict):
        found = set()
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/"):
                found.add(".".join(value.split("/")[2:4]))
            else:
                found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _reachable(node, components: dict) -> set[str]:
    """Every component ``node`` uses, directly or through other components."""
    seen, todo = set(), list(_refs(node))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        kind, _, component = name.partition(".")
        todo.extend(_refs(components.get(kind, {}).get(component, {})))
    return seen


def summarize(before: dict, after: dict) -> list[str]:
    """What differs between two documents, one line each: operations added, removed or changed (with the
    changed components that change them), components added, removed or changed, and any other top-level
    member that changed."""
    old_components, new_components = before.get("components", {}), after.get("components", {})
    changed_components = set()
    component_lines = []
    for kind in sorted(set(old_components) | set(new_components)):
        old, new = old_components.get(kind, {}), new_components.get(kind, {})
        for name in sorted(old.keys() | new.keys()):
            if old.get(name) != new.get(name):
                changed_components.add(f"{kind}.{name}")
                sign = "+" if name not in old else "-" if name not in new else "~"
                component_lines.append(f"{sign} components.{kind}.{name}")
    lines = []
    old_ops, new_ops = _operations(before), _operations(after)
    lines += [f"+ operation {name}" for name in sorted(new_ops.keys() - old_ops.keys())]
    lines += [f"- operation {name}" for name in sorted(old_ops.keys() - new_ops.keys())]
    for name in sorted(old_ops.keys() & new_ops.keys()):
        via = sorted(
            changed_components & (_reachable(old_ops[name], old_components) | _reachable(new_ops[name], new_components))
        )
        if old_ops[name] != new_ops[name] or via:
            lines.append(f"~ operation {name}" + (f" (through {', '.join(via)})" if via else ""))
    lines += component_lines
    for key in sorted((set(before) | set(after)) - {"paths", "components"}):
        if before.get(key) != after.get(key):
            lines.append(f"~ {key}")
    return lines


# --- the check ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    version: str
    status: str  # "unchanged", "additive", "breaking", "missing"
    lines: list[str]

    @property
    def failed(self) -> bool:
        return self.status != "unchanged"


def check_version(version: str, *, contract_dir: Path | None = None, baseline: Path | None = None) -> Outcome:
    """Hold the code's document of ``version`` against its committed copy (in ``contract_dir``, by default
    ``openapi/``), or against ``baseline`` when given (e.g. the copy at another git revision)."""
    committed = baseline or (contract_dir / f"{version}.json" if contract_dir else committed_path(version))
    generated_text = render(schema_for(version, fresh=True))
    if not committed.exists():
        return Outcome(version, "missing", [f"{committed} does not exist."])
    committed_text = committed.read_text()
    if committed_text == generated_text:
        return Outcome(version, "unchanged", [])
    with tempfile.TemporaryDirectory(prefix="contract-") as scratch:
        generated = Path(scratch) / f"{version}.json"
        generated.write_text(generated_text)
        verdict = breaking_changes(committed, generated)
    summary = summarize(json.loads(committed_text), json.loads(generated_text))
    if verdict.breaking:
        return Outcome(version, "breaking", [*summary, "", verdict.report])
    return Outcome(version, "additive", summary)
