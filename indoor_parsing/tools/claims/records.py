"""Run records: one small JSON per finished run under ``<out>/records``, keyed by a fingerprint of its settings.

A record is reused only when its fingerprint (the resolved config, seed, steps, SynthRooms options, and the
fingerprints of the runs it starts from) equals the one the current settings give; ``--commit`` commits each record
as it is written, alone, so a claims run spanning several sessions keeps its results.
"""

import hashlib
import json
import subprocess
from pathlib import Path

from indoor_parsing.io import read_json, write_json


def run_name(comparison: str, arm: str, seed: int) -> str:
    return f"{comparison}__{arm}__seed{seed}".replace(" ", "_").replace("/", "-").replace("%", "pct").replace(":", "")


def fingerprint(settings: dict, out: Path, run_dir: Path | None = None) -> str:
    """Hash of ``settings`` with paths under ``out`` written relative to it (moving ``--out`` keeps records) and the
    run's own folder ``run_dir`` left out (two arms of equal settings in different comparisons hash the same)."""
    prefixes = sorted({str(Path(out)), str(Path(out).resolve())}, key=len, reverse=True)
    own = sorted({str(Path(run_dir)), str(Path(run_dir).resolve())}, key=len, reverse=True) if run_dir else []

    def norm(node):
        if isinstance(node, dict):
            return {k: norm(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [norm(v) for v in node]
        if isinstance(node, str):
            for p in own:
                node = node.replace(p, "<run>")
            for p in prefixes:
                node = node.replace(p, "<out>")
            if Path(node).is_file() and Path(node).stat().st_size < 1 << 20:  # a style file: its content counts
                node = f"{node}#{hashlib.sha256(Path(node).read_bytes()).hexdigest()[:12]}"
        return node

    return hashlib.sha256(json.dumps(norm(settings), sort_keys=True, default=str).encode()).hexdigest()[:16]


def load(path: Path, expected: str) -> dict | None:
    """The record at ``path`` when it was made with the settings whose fingerprint is ``expected``."""
    if not path.is_file():
        return None
    record = read_json(path)
    if record.get("fingerprint") != expected:
        print(f"{path}: made with other settings; training again")
        return None
    return record


def find_equal(folder: Path, expected: str, exclude: Path) -> dict | None:
    """A record under ``folder`` (other than ``exclude``) made with the settings whose fingerprint is ``expected``:
    the same training in another comparison, whose results can be reused."""
    for other in sorted(Path(folder).glob("*.json")):
        record = read_json(other) if other != exclude else {}
        if record.get("fingerprint") == expected:
            return {**record, "reused_from": other.stem}
    return None


def save(path: Path, record: dict, commit: bool, message: str) -> None:
    write_json(path, record)
    if commit:
        git_commit_file(path, message)


def git_commit_file(path: Path, message: str) -> None:
    """``git add`` and commit this one file in the checkout holding it (other changes stay as they are)."""
    where = ["git", "-C", str(path.parent)]
    subprocess.run([*where, "add", "-f", "--", path.name], check=True, capture_output=True)
    if subprocess.run([*where, "diff", "--cached", "--quiet", "--", path.name]).returncode == 0:
        return  # unchanged
    subprocess.run([*where, "commit", "-q", "--only", "-m", message, "--", path.name], check=True, capture_output=True)


def check_git(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["git", "-C", str(folder), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        raise SystemExit(f"--commit: {folder} is not inside a git checkout")
