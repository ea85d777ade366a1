"""`rsnb-repro` as a user meets it: it runs what `nbdev-test` runs (slow cells only with `--slow`), writes where `--out`
points from the current folder, checks weights and data before any compute, marks each run folder running / done /
failed (`status.json`), and `--list` says what each paper is and how long its defaults take."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from e2e_helpers import ROOT

BIN = Path(sys.executable).parent

def repro(*args, cwd, env=None, timeout=300):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}
    return subprocess.run([str(BIN/'rsnb-repro'), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)

def test_out_is_relative_to_the_current_folder(tmp_path):
    before = set((ROOT/'runs'/'demo').glob('*')) if (ROOT/'runs'/'demo').exists() else set()
    r = repro('demo', '--out', 'mine', '--set', 'n=20', '-q', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    runs = list((tmp_path/'mine'/'demo').glob('*/results.json'))
    assert len(runs) == 1, r.stderr
    assert json.loads((runs[0].parent/'status.json').read_text())['state'] == 'done'
    after = set((ROOT/'runs'/'demo').glob('*')) if (ROOT/'runs'/'demo').exists() else set()
    assert after == before   # nothing written into the checkout

def test_list_fits_and_names_every_paper(tmp_path):
    r = repro('--list', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    papers = sorted(p.stem for p in (ROOT/'nbs'/'papers').glob('*.ipynb'))
    assert [l.split()[0] for l in lines] == papers
    assert all(len(l) <= 120 and ' min ' in l for l in lines), lines

def test_released_weights_checked_before_compute(tmp_path):
    "A released run whose weights were never fetched stops in one line naming the command that fetches them; no run folder."
    home = tmp_path/'home'; home.mkdir()
    env = dict(HOME=str(home), TORCH_HOME=str(home), RSNB_WEIGHTS=str(home/'w'))
    r = repro('egan', '--params', 'released', '--out', 'runs', cwd=tmp_path, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and 'rsnb-weights get bmshj2018-hyperprior-q3 --download' in err[0], err
    assert not (tmp_path/'runs').exists()

def test_missing_dataset_checked_before_compute(tmp_path):
    r = repro('sgsln', '--set', 'dataset=whu_cd', '--out', 'runs', cwd=tmp_path, env=dict(RSNB_DATA=str(tmp_path/'nodata')))
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and 'whu' in err[0].lower() and 'not found' in err[0], err
    assert not (tmp_path/'runs').exists()

NB = {'cells': [
    {'cell_type': 'code', 'id': 'p1', 'metadata': {'tags': ['parameters']}, 'execution_count': None, 'outputs': [],
     'source': "out_dir = 'runs/tiny'\nfail = False\n"},
    {'cell_type': 'code', 'id': 'c1', 'metadata': {}, 'execution_count': None, 'outputs': [],
     'source': "from pathlib import Path\nfrom rsnb.repro import record_results\nPath(out_dir).mkdir(parents=True, exist_ok=True)\nran = []"},
    {'cell_type': 'code', 'id': 'c2', 'metadata': {}, 'execution_count': None, 'outputs': [],
     'source': "#| slow\nran.append('slow')"},
    {'cell_type': 'code', 'id': 'c3', 'metadata': {}, 'execution_count': None, 'outputs': [],
     'source': "#| repro\nran.append('repro')"},
    {'cell_type': 'code', 'id': 'c4', 'metadata': {}, 'execution_count': None, 'outputs': [],
     'source': "assert not fail, 'asked to fail'\nrecord_results(out_dir, 'tiny', {'row': {'n_cells': len(ran)}}, {}, {'ran': ran})"}],
    'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}}, 'nbformat': 4, 'nbformat_minor': 5}

@pytest.fixture
def tiny_paper(tmp_path, monkeypatch):
    import rsnb.repro as R
    papers = tmp_path/'papers'; (papers/'params').mkdir(parents=True)
    (papers/'tiny.ipynb').write_text(json.dumps(NB))
    monkeypatch.setattr(R, 'papers_dir', lambda: papers)
    return R

def test_slow_cells_only_when_asked(tmp_path, tiny_paper):
    R = tiny_paper
    ran = lambda res: json.loads(Path(res).read_text())['params']['ran']
    assert ran(R.run_paper('tiny', out_root=tmp_path/'a', progress=False)) == []
    assert ran(R.run_paper('tiny', out_root=tmp_path/'b', progress=False, slow=True)) == ['slow']
    saved = json.loads(next((tmp_path/'a'/'tiny').glob('*/tiny.ipynb')).read_text())
    assert sum('Left out by rsnb-repro' in ''.join(c['source']) for c in saved['cells']) == 2

def test_failed_run_is_marked_in_its_folder(tmp_path, tiny_paper):
    R = tiny_paper
    from rsnb.core import RsnbError
    with pytest.raises(RsnbError, match='asked to fail'):
        R.run_paper('tiny', overrides={'fail': True}, out_root=tmp_path, progress=False)
    st = json.loads(next((tmp_path/'tiny').glob('*/status.json')).read_text())
    assert st['state'] == 'failed' and 'asked to fail' in st['error'] and st['finished'], st
