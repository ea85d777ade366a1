"""Shared by the test files: the docs site, built once for every test process of a run."""
import fcntl, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE, LOG, LOCK = ROOT/'_docs', ROOT/'_docs.build.log', ROOT/'_docs.build.lock'

def _newest_source() -> float:
    srcs = [*(ROOT/'nbs').rglob('*.ipynb'), *(ROOT/'rsnb').rglob('*.py'), *(ROOT/'nbs').glob('*.yml'), *(ROOT/'nbs').glob('*.css'),
            ROOT/'tools'/'build_docs.py', ROOT/'pyproject.toml']
    return max(p.stat().st_mtime for p in srcs if p.exists())

def docs_build() -> tuple:
    """(site folder, build log) of `tools/build_docs.py`. The build deletes and rewrites `_docs/`, so processes running
    test files at the same time (test_docs, test_docs_browser) take a file lock: the first builds, the others reuse
    its site and log; a site older than any notebook, module or docs setting is built again."""
    with open(LOCK, 'w') as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        idx = SITE/'index.html'
        if not (idx.exists() and LOG.exists() and min(idx.stat().st_mtime, LOG.stat().st_mtime) > _newest_source()):
            LOG.unlink(missing_ok=True)
            r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py')], cwd=ROOT, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            LOG.write_text(r.stdout + r.stderr)
        return SITE, LOG.read_text()
