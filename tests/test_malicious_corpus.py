"""The hostile-file corpus (`tests/malicious.py`) is live: loaded the unsafe way, every file runs its payload; loaded
the safe way (`torch.load(weights_only=True)`, `yaml.safe_load`), none does. Tests of rsnb's entry points use this corpus."""
import subprocess, sys
from pathlib import Path
import pytest
from malicious import corpus

HERE = Path(__file__).resolve().parent

def _in_child(code, cwd):
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, capture_output=True, text=True, timeout=120)

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('corpus')
    return d, corpus(d/'files', d/'MARKER')

def test_every_file_runs_its_payload_when_loaded_unsafely(files):
    d, fs = files
    for name, path in fs.items():
        if name == 'absurd_size.pth': continue   # no payload: its danger is the allocation
        m = d/'MARKER'; m.unlink(missing_ok=True)
        _in_child(f"import sys; sys.path.insert(0, {str(HERE)!r}); import malicious; malicious.unsafe_load({str(path)!r})", d)
        assert m.exists(), f'{name}: the payload did not run when loaded unsafely (the corpus would prove nothing)'
    m.unlink()

def test_safe_loaders_refuse_every_file(files):
    import torch, yaml
    d, fs = files
    for name, path in fs.items():
        if name.endswith('.yaml'):
            with pytest.raises(yaml.YAMLError): yaml.safe_load(path.read_text())
        elif name.endswith('.pth') or name.endswith('.pth.tar'):
            if name == 'absurd_size.pth': continue
            with pytest.raises(Exception): torch.load(path, weights_only=True, map_location='cpu')
    assert not (d/'MARKER').exists()
