#!/usr/bin/env python
"""rsnb's test suite: every notebook (as `nbdev-test` runs it) plus `pytest tests`, with one closing line.

Notebooks run through nbdev's own machinery (its cell-skipping rules, `tst_flags` from pyproject.toml, execnb's
CaptureShell), each in a fresh process, `--workers` at a time. `pytest tests` is split by test file into shards of
about the same expected time, each one more job in the same pool (`pytest.main` in the job's process), so they overlap
the notebooks and the workers stay busy to the end (`--pytest-after`: run them after the notebooks instead; extra
pytest arguments: one unsplit run). Every job's process is forked from a multiprocessing fork server that has imported
`PRELOAD` (torch, fastai, IPython, nbdev, rsnb's core modules) once, instead of paying ~5 s of imports per job. Jobs
are submitted longest first (expected durations: the last run's on this machine, else `tools/test_durations.json`
(measured on the 2-core machine, per notebook and per test file), else `EXPECTED`, else an estimate from the number of
code cells), so the workers finish together. A notebook that stops on `rsnb.core.DataMissing` (dataset absent on this machine) is counted
as skipped and its message printed. Closing lines: the time of each phase, then `N passed, N failed, N skipped`.
"""
import argparse, json, os, re, sys, time, traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Expected durations (s, 2-core CI machine, one torch thread per job) when this machine has measured none yet
# (DURATIONS keeps the last measured ones); only their order matters. The three paper notebooks: measured 2026-12-02
# on the shared machine; pytest: a guess (the longest job by far). Others: an estimate from their code cells, paper
# notebooks (they train or evaluate models) at least a minute. demo and 00_core: measured too.
EXPECTED = {'pytest': 420, 'nbs/papers/egan.ipynb': 70, 'nbs/papers/ecea.ipynb': 60, 'nbs/papers/rsseg_benchmark.ipynb': 45,
            'nbs/papers/demo.ipynb': 7, 'nbs/00_core.ipynb': 4}
DURATIONS = Path(os.environ.get('RSNB_TEST_DURATIONS', Path.home()/'.cache'/'rsnb'/'test_durations.json'))
COMMITTED = ROOT/'tools'/'test_durations.json'   # `--write-expected` updates it from a whole default run
SHARD_OVERHEAD = 6.   # s of a pytest shard's start (collection, its test files' imports) beside its tests
# Imported once by the pool's fork server; every job (a fresh process, forked from it) starts with them loaded instead
# of paying ~5 s of imports (torch, fastai, IPython...) per notebook. Only imports: no thread, no open file, no RNG use.
PRELOAD = ['numpy', 'torch', 'torchvision', 'rasterio', 'matplotlib', 'PIL.Image', 'fastai.vision.all', 'IPython',
           'execnb.shell', 'nbdev.process', 'nbdev.test', 'nbdev.frontmatter', 'nbdev.config', 'fastcore.test', 'pytest',
           'rsnb.core', 'rsnb.geo', 'rsnb.cli', 'rsnb.tiles', 'rsnb.data', 'rsnb.weights']

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

def _file_times(xml:Path) -> dict:
    "Seconds per test file ('tests/test_x.py') from a pytest junit report (xunit1: each testcase names its file)."
    import xml.etree.ElementTree as ET
    out = {}
    try: root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError): return out
    for tc in root.iter('testcase'):
        f = tc.get('file')
        if f: out[f] = out.get(f, 0.) + float(tc.get('time') or 0)
    return out

def _run_pytest(extra, files=None):
    "(passed, failed, skipped, output, seconds, {file: seconds}) of `pytest` on `files` (default: all of tests/), in this process (a pool job: the preloaded modules are already imported)."
    import tempfile
    start = time.time()
    if not (ROOT/'tests').is_dir(): return 0, 0, 0, '', 0., {}
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        xml, log = Path(tmp)/'junit.xml', Path(tmp)/'out.txt'
        args = [*(files or [str(ROOT/'tests')]), '-q', '-rs', '-p', 'no:cacheprovider', f'--junitxml={xml}', '-o', 'junit_family=xunit1', *extra]
        sys.stdout.flush(); sys.stderr.flush()
        fd, saved = os.open(log, os.O_WRONLY | os.O_CREAT), (os.dup(1), os.dup(2))
        os.dup2(fd, 1); os.dup2(fd, 2)          # the terminal report (and whatever tests write) into the log
        try:
            import pytest
            code = int(pytest.main(args))
        except BaseException:
            code = 3; traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
            for f in (fd, *saved): os.close(f)
        text, times = log.read_text(errors='replace'), _file_times(xml)
    counts = {k: 0 for k in ('passed', 'failed', 'skipped', 'error')}
    last = [l for l in text.splitlines() if re.search(r'\d+ (passed|failed|skipped|error)', l)]
    for n, k in re.findall(r'(\d+) (passed|failed|skipped|error)', last[-1] if last else ''): counts[k] = int(n)
    if code not in (0, 5) and not (counts['failed'] or counts['error']): counts['error'] = 1
    return counts['passed'], counts['failed'] + counts['error'], counts['skipped'], text[-25000:], time.time() - start, times

def test_files():
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/'tests').glob('test_*.py')) if (ROOT/'tests').is_dir() else []

def pytest_shards(workers:int, known=None) -> list:
    "Test files in shards of about equal expected time (largest first into the least loaded shard), longest shard first."
    known = load_durations() if known is None else known
    files = sorted(test_files(), key=lambda f: (-expected_seconds(f, known), f))
    if not files: return []
    total = sum(expected_seconds(f, known) for f in files)
    target = max(90., total/(3*max(1, workers)))    # about three shards a worker: the pool balances them with the notebooks
    shards = []
    for f in files:
        t = expected_seconds(f, known)
        best = min(shards, key=lambda b: b[0], default=None)
        if best is not None and best[0] + t <= target: best[0] += t; best[1].append(f)
        else: shards.append([SHARD_OVERHEAD + t, [f]])
    return [b[1] for b in sorted(shards, key=lambda b: -b[0])]

def _rel(fn): return Path(fn).relative_to(ROOT).as_posix()

def load_durations():
    try: d = json.loads(DURATIONS.read_text())
    except (OSError, ValueError): return {}
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))} if isinstance(d, dict) else {}

def save_durations(new):
    if not new: return
    try:
        DURATIONS.parent.mkdir(parents=True, exist_ok=True)
        DURATIONS.write_text(json.dumps({**load_durations(), **{k: round(v, 1) for k, v in new.items()}}, indent=0, sort_keys=True))
    except OSError: pass   # a read-only home: ordering falls back to EXPECTED

def committed_durations() -> dict:
    try: d = json.loads(COMMITTED.read_text())
    except (OSError, ValueError): return {}
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))} if isinstance(d, dict) else {}

def expected_seconds(key, known=None):
    "Expected duration of a job: a notebook or test file path relative to the repository root, 'pytest', or a shard."
    known = load_durations() if known is None else known
    if isinstance(key, tuple): return SHARD_OVERHEAD + sum(expected_seconds(f, known) for f in key)
    if key in known: return known[key]
    c = committed_durations()
    if key in c: return c[key]
    if key in EXPECTED: return EXPECTED[key]
    if key.startswith('tests/'): return 15.
    try: cells = [c for c in json.loads((ROOT/key).read_text())['cells'] if c['cell_type'] == 'code']
    except (OSError, ValueError, KeyError): return 10.
    return max(3. + 0.5*len(cells), 60. if key.startswith('nbs/papers/') else 0.)

def longest_first(keys, known=None):
    "`keys` sorted by decreasing expected duration (ties: by name)."
    known = load_durations() if known is None else known
    return sorted(keys, key=lambda k: (-expected_seconds(k, known), str(k)))

def run_all(paths, flags, workers, timeout, pytest_extra=None):
    """Run the notebooks `paths` (and pytest when `pytest_extra` is a list: in shards of test files, or as one run when
    it holds arguments) in one pool, longest first."""
    keys = [_rel(p) for p in paths]
    if pytest_extra is not None: keys += ['pytest'] if pytest_extra else [tuple(s) for s in pytest_shards(workers)]
    res, pyt, took, busy = [], [0, 0, 0], {}, {'notebooks': 0., 'pytest': 0.}
    if not keys: return res, tuple(pyt), busy
    n_shards = sum(isinstance(k, tuple) for k in keys)
    import multiprocessing as mp
    ctx = mp.get_context('forkserver')     # a fresh process per job (max_tasks_per_child=1), forked from a preloaded server
    ctx.set_forkserver_preload(PRELOAD)
    with ProcessPoolExecutor(max(1, workers), mp_context=ctx, max_tasks_per_child=1) as ex:
        def submit(k):
            if k == 'pytest': return ex.submit(_run_pytest, pytest_extra)
            if isinstance(k, tuple): return ex.submit(_run_pytest, [], list(k))
            return ex.submit(_run_nb, str(ROOT/k), flags, timeout)
        futs = {submit(k): k for k in longest_first(keys)}
        for f in as_completed(futs):
            k = futs[f]
            if k == 'pytest' or isinstance(k, tuple):
                try: p, fl, s, out, t, times = f.result()
                except Exception as e: p, fl, s, out, t, times = 0, 1, 0, repr(e), 0., {}
                if k == 'pytest' or fl: print(out, flush=True)
                else: print('\n'.join(l for l in out.splitlines() if l.startswith('SKIPPED') or re.search(r'\d+ passed', l)), flush=True)
                what = 'pytest' if k == 'pytest' else f'pytest shard of {len(k)} file{"s"*(len(k) > 1)} ({", ".join(Path(x).stem.removeprefix("test_") for x in k)[:70]})'
                print(f'{"PYTEST":8s} {t:6.1f}s  {what}: {p} passed, {fl} failed, {s} skipped', flush=True)
                pyt = [a + b for a, b in zip(pyt, (p, fl, s))]; busy['pytest'] += t
                if isinstance(k, tuple) and not fl: took.update(times)   # per test file, of the default run
                continue
            try: fn, status, msg, t = f.result()
            except Exception as e: fn, status, msg, t = k, 'failed', repr(e), 0.
            print(f'{status.upper():8s} {t:6.1f}s  {k}', flush=True)
            if status == 'failed': print(msg, flush=True)
            if status == 'skipped' and msg: print(f'         {msg}', flush=True)
            res.append(status); busy['notebooks'] += t
            if status == 'passed' and not flags: took[k] = t   # durations of the default (CI) run only
    busy['shards'] = n_shards
    save_durations(took)
    return res, tuple(pyt), busy

def find_notebooks(pattern=None):
    nbs = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                 if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT/'nbs').parts))
    return [p for p in nbs if not pattern or re.search(pattern, str(p.relative_to(ROOT)))]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('pattern', nargs='?', help='only notebooks whose path matches this regex')
    ap.add_argument('--flags', default='', help='space-separated flags to run too, e.g. "slow"')
    ap.add_argument('--workers', type=int, default=int(os.environ.get('RSNB_TEST_WORKERS', 2)))
    ap.add_argument('--timeout', type=int, default=600, help='seconds per cell')
    ap.add_argument('--no-pytest', action='store_true'); ap.add_argument('--no-notebooks', action='store_true')
    ap.add_argument('--pytest-after', action='store_true', help='run pytest after the notebooks, not beside them')
    ap.add_argument('--write-expected', action='store_true', help='after a passing default run, write the measured durations to tools/test_durations.json')
    a, extra = ap.parse_known_args()
    start = time.time()
    paths = [] if a.no_notebooks else find_notebooks(a.pattern)
    with_pytest = not a.no_pytest
    nb, (p, f, s), busy = run_all(paths, a.flags.split(), a.workers, a.timeout, extra if with_pytest and not a.pytest_after else None)
    t_pool = time.time() - start
    if with_pytest and a.pytest_after:
        nb2, (p, f, s), b2 = run_all([], [], 1, a.timeout, extra); busy['pytest'], busy['shards'] = b2['pytest'], b2.get('shards')
    passed, failed, skipped = nb.count('passed') + p, nb.count('failed') + f, nb.count('skipped') + s
    if a.write_expected and not failed and not a.pattern and not a.flags and not extra:
        COMMITTED.write_text(json.dumps({k: round(v, 1) for k, v in sorted(load_durations().items()) if k != 'pytest'}, indent=0) + '\n')
    shards = f' in {busy["shards"]} shards' if busy.get('shards') else ''
    print(f'phases: notebooks {len(nb)} in {busy["notebooks"]:.0f} s of worker time'
          + (f', pytest{shards} {busy["pytest"]:.0f} s of worker time' + (' (after the notebooks)' if a.pytest_after else ' (beside them)') if with_pytest else '')
          + f'; {a.workers} workers, pool {t_pool:.0f} s; total {time.time()-start:.0f} s')
    print(f'notebooks: {nb.count("passed")} passed, {nb.count("failed")} failed, {nb.count("skipped")} skipped; '
          f'pytest: {p} passed, {f} failed, {s} skipped; {time.time()-start:.0f} s')
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main())
