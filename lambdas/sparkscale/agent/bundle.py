"""Pack the agent into one file for EMR nodes, and lay out the bootstrap asset folder.

`heap-agent.pyz` is a zipapp: `python3 heap-agent.pyz --port 8125 --cluster-id j-…`. It holds
`sparkscale/__init__.py`, `sparkscale/names.py` and `sparkscale/agent/` only (standard library + optional
boto3), byte-for-byte the same for the same sources (fixed timestamps, sorted entries), so a CDK asset hash
changes only when the code does.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # lambdas/sparkscale
REPO_ROOT = Path(__file__).resolve().parents[3]
# bootstrap/ in a checkout; the wheel carries the same files as sparkscale/agent/_bootstrap (setup.py).
_INSTALLED_BOOTSTRAP_DIR = Path(__file__).resolve().parent / "_bootstrap"
BOOTSTRAP_DIR = _INSTALLED_BOOTSTRAP_DIR if _INSTALLED_BOOTSTRAP_DIR.is_dir() else REPO_ROOT / "bootstrap"
AGENT_FILE = "heap-agent.pyz"
INSTALL_SCRIPT = "install-heap-agent.sh"
SPARK_METRICS_JSON = "spark-metrics.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)

# names.py imports typing.Final (Python 3.8+); on Python 3.7 (EMR 5.30-6.x, Amazon Linux 2) it only needs to
# exist, since `from __future__ import annotations` keeps the annotations unevaluated.
MAIN = '''"""sparkscale Spark JVM heap agent (zipapp). Usage: python3 heap-agent.pyz --help"""
import sys
import typing

if not hasattr(typing, "Final"):
    typing.Final = typing.Any
if sys.version_info < (3, 7):
    sys.exit("heap-agent needs Python 3.7 or newer")

from sparkscale.agent.cli import main

sys.exit(main())
'''


def agent_sources() -> list[tuple[str, Path]]:
    """(archive name, source path) of every module the agent needs, sorted."""
    files = [
        ("sparkscale/__init__.py", PACKAGE_ROOT / "__init__.py"),
        ("sparkscale/names.py", PACKAGE_ROOT / "names.py"),
    ]
    files += [(f"sparkscale/agent/{p.name}", p) for p in sorted((PACKAGE_ROOT / "agent").glob("*.py"))]
    return sorted(files)


def build_agent_pyz(dest: str | Path) -> Path:
    """Write the zipapp to `dest` (a file path) and return it."""
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as raw:
        raw.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            entries = [("__main__.py", MAIN.encode("utf-8"))]
            entries += [(name, source.read_bytes()) for name, source in agent_sources()]
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
    tmp.chmod(0o755)
    tmp.replace(path)
    return path


def build_bootstrap_dir(out_dir: str | Path) -> list[Path]:
    """The bootstrap asset: install-heap-agent.sh, spark-metrics.json and heap-agent.pyz side by side."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (INSTALL_SCRIPT, SPARK_METRICS_JSON):
        target = out / name
        shutil.copyfile(BOOTSTRAP_DIR / name, target)
        target.chmod(0o755 if name.endswith(".sh") else 0o644)
        written.append(target)
    written.append(build_agent_pyz(out / AGENT_FILE))
    return written
