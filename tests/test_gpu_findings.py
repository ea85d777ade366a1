"""Defects the first GPU run (H200, 2026-12-04, benchmarks/gpu_run.sh) found, checked on the CPU where they can be.

- `benchmarks/compression_train.py` built fastai DataLoaders without a device, so the codec trained on the host CPU
  beside an idle GPU (0.7 s per step); fastai only moves batches (and the model) when the DataLoaders have a device.
- `benchmark_learner(amp='bf16')` called `Learner.to_bf16`, which fastai only adds when `fastai.callback.fp16` is imported.
- ECEA's DataLoader workers could not import a dataset class defined in a notebook under the 'spawn' start method.
"""
import importlib.util, subprocess, sys
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]

def _script(name):
    sys.path.insert(0, str(ROOT/'benchmarks'))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT/'benchmarks'/f'{name}.py')
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod
    finally: sys.path.remove(str(ROOT/'benchmarks'))

class _Stop(Exception): pass

def test_codec_training_dataloaders_have_the_device(monkeypatch, tmp_path):
    from rsnb.tiles import pick_device
    mod = _script('compression_train')
    seen = {}
    def from_dsets(*dsets, **kw): seen.update(kw); raise _Stop
    monkeypatch.setattr(mod.DataLoaders, 'from_dsets', staticmethod(from_dsets))
    monkeypatch.setattr(mod, 'training_items', lambda: [(torch.zeros(3, 64, 64).numpy(), 0., 1., 'x')])
    with pytest.raises(_Stop): mod.main(['--seconds', '1', '--out', str(tmp_path), '--size', '32'])
    assert seen['device'] == pick_device(None)
    with pytest.raises(_Stop): mod.main(['--seconds', '1', '--out', str(tmp_path), '--size', '32', '--device', 'cpu'])
    assert seen['device'] == torch.device('cpu')

def test_segmentation_amp_patches_loaded():
    code = ("import rsnb.segmentation.train\nfrom fastai.learner import Learner\n"
            "print(hasattr(Learner, 'to_bf16'), hasattr(Learner, 'to_fp16'))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ['True', 'True'], out.stderr[-2000:]
