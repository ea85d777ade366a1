#!/usr/bin/env python
"""rsnb's test suite: every notebook (as `nbdev-test` runs it) plus `pytest tests`, with one closing line.

Notebooks run through nbdev's own machinery (its cell-skipping rules, `tst_flags` from pyproject.toml, execnb's
CaptureShell), each in a fresh process, `--workers` at a time. A notebook that stops on `rsnb.core.DataMissing`
(dataset absent on this machine) is counted as skipped and its message printed. Closing line:
`N passed, N failed, N skipped`.
"""
import argparse, os, re, subprocess, sys, time, traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _run_nb(fn, flags, timeout):
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ['IN_TEST'] = '1'
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import nb_frontmatter
    from nbdev.test import _skip_cell
    from execnb.shell import CaptureShell
    import torch; torch.set_num_threads(int(os.environ.get('RSNB_TEST_THREADS', '1')))
    fn = Path(fn); start = time.time()
    nb = NBProcessor(fn, rm_directives=False, process=True).nb
    if str(nb_frontmatter(nb).get('skip_exec', '')).lower() in ('true', '1'): return fn, 'skipped', 'skip_exec', 0.
    cfg = get_config(fn.parent)
    skip_flags = cfg.tst_flags if not isinstance(cfg.tst_flags, str) else cfg.tst_flags.split()
    k = CaptureShell(fn)
    try:
        with working_directory(fn.parent):
            k.run_all(nb, exc_stop=True, preproc=_skip_cell(nb, skip_flags, flags), cell_timeout=timeout)
        return fn, 'passed', '', time.time()-start
    except BaseException as e:
        if type(e).__name__ == 'DataMissing': return fn, 'skipped', str(e), time.time()-start
        return fn, 'failed', (k.prettytb(fname=fn) or traceback.format_exc()), time.time()-start

def run_notebooks(paths, flags, workers, timeout):
    res = []
    with ProcessPoolExecutor(workers, max_tasks_per_child=1) as ex:
        futs = [ex.submit(_run_nb, str(p), flags, timeout) for p in paths]
        for f in as_completed(futs):
            try: fn, status, msg, t = f.result()
            except Exception as e: fn, status, msg, t = '?', 'failed', repr(e), 0.
            rel = Path(fn).relative_to(ROOT) if fn != '?' else fn
            print(f'{status.upper():8s} {t:6.1f}s  {rel}', flush=True)
            if status == 'failed': print(msg, flush=True)
            if status == 'skipped' and msg: print(f'         {msg}', flush=True)
            res.append(status)
    return res

def find_notebooks(pattern=None):
    nbs = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                 if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts))
    return [p for p in nbs if not pattern or re.search(pattern, str(p.relative_to(ROOT)))]

def run_pytest(extra):
    if not (ROOT/'tests').is_dir(): return 0, 0, 0
    cmd = [sys.executable, '-m', 'pytest', str(ROOT/'tests'), '-q', '-rs', '-p', 'no:cacheprovider', *extra]
    out = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    print(out.stdout[-20000:], out.stderr[-5000:], sep='\n', flush=True)
    counts = {k: 0 for k in ('passed', 'failed', 'skipped', 'error')}
    last = [l for l in out.stdout.splitlines() if re.search(r'\d+ (passed|failed|skipped|error)', l)]
    for n, k in re.findall(r'(\d+) (passed|failed|skipped|error)', last[-1] if last else ''): counts[k] = int(n)
    if out.returncode not in (0, 5) and not (counts['failed'] or counts['error']): counts['error'] = 1
    return counts['passed'], counts['failed'] + counts['error'], counts['skipped']

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('pattern', nargs='?', help='only notebooks whose path matches this regex')
    ap.add_argument('--flags', default='', help='space-separated flags to run too, e.g. "slow"')
    ap.add_argument('--workers', type=int, default=int(os.environ.get('RSNB_TEST_WORKERS', 2)))
    ap.add_argument('--timeout', type=int, default=600, help='seconds per cell')
    ap.add_argument('--no-pytest', action='store_true'); ap.add_argument('--no-notebooks', action='store_true')
    a, extra = ap.parse_known_args()
    start = time.time()
    nb = [] if a.no_notebooks else run_notebooks(find_notebooks(a.pattern), a.flags.split(), a.workers, a.timeout)
    p, f, s = (0, 0, 0) if a.no_pytest else run_pytest(extra)
    passed, failed, skipped = nb.count('passed') + p, nb.count('failed') + f, nb.count('skipped') + s
    print(f'notebooks: {nb.count("passed")} passed, {nb.count("failed")} failed, {nb.count("skipped")} skipped; '
          f'pytest: {p} passed, {f} failed, {s} skipped; {time.time()-start:.0f} s')
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
