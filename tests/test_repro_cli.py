"""End-to-end: `rsnb-repro` runs reproduction notebooks through papermill, as a user would."""
import json, os, subprocess, sys
from pathlib import Path
import nbformat as nbf
import pytest
import rsnb.repro as repro
from rsnb.core import DataMissing

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def test_demo_cli_writes_results(tmp_path):
    out = subprocess.run([str(BIN/'rsnb-repro'), 'demo', '--out', str(tmp_path), '--set', 'n=100', '--set', 'seed=1'],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    res = list(tmp_path.glob('demo/*/results.json'))
    assert len(res) == 1
    r = json.loads(res[0].read_text())
    assert r['params'] == {'n': 100, 'noise': 0.1, 'seed': 1}
    assert abs(r['measured']['line']['slope'] - 2) < 0.1
    assert (res[0].parent/'demo.ipynb').exists()             # the executed notebook is kept beside the results
    assert 'slope' in out.stdout and 'paper' in out.stdout    # the table is printed

def test_unknown_paper_is_a_clear_error(tmp_path):
    out = subprocess.run([str(BIN/'rsnb-repro'), 'nonexistent', '--out', str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "no reproduction notebook for 'nonexistent'" in out.stderr and 'Traceback' not in out.stderr

def test_missing_data_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    nb = nbf.v4.new_notebook()
    p = nbf.v4.new_code_cell("out_dir = 'x'"); p.metadata['tags'] = ['parameters']
    nb.cells = [p, nbf.v4.new_code_cell("from rsnb.core import data_path\ndata_path('no_such_dataset', hint='https://example.org/get-it')")]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    (tmp_path/'papers').mkdir(); nbf.write(nb, tmp_path/'papers'/'needsdata.ipynb')
    monkeypatch.setattr(repro, 'papers_dir', lambda: tmp_path/'papers')
    with pytest.raises(DataMissing, match='no_such_dataset.*example.org/get-it'):
        repro.run_paper('needsdata', out_root=tmp_path/'runs', progress=False)
