"""The hostile corpus of `tests/malicious.py` fed to the loaders of auxiliary weights (issue 23, item 1: every code
path reads torch files through `rsnb.weights.load_torch`): ImageNet weights for a scene classifier (`load_imagenet`)
and for a light segmenter's encoder (`load_imagenet_encoder`), an SSL checkpoint (`ssl_encoder_state`), the VGG16
features of the ECEA perceptual loss (`VGGFeatures`) and the LPIPS weights (`lpips_model`, found by file name in
`RSNB_WEIGHTS`). The ImageNet loaders check a file's SHA-256 before reading it, which refuses the corpus first; the
others read it through `load_torch`. For each torch file of the corpus: the payload never runs (no marker), the error is one line naming the
file, and a tensor declaring 4 TiB over 4 bytes is refused before anything is allocated."""
import os, shutil
from pathlib import Path
import pytest, torch

from malicious import corpus
from rsnb.core import RsnbError

TORCH_FILES = [k for k in ('torch_zip.pth', 'torch_legacy.pth', 'torch_zip_net.pth', 'torch_legacy_net.pth', 'torch_zip.pth.tar',
                           'torch_legacy.pth.tar', 'torch_zip_checkpoint.pth', 'pickle_p2_exec.pkl', 'pickle_p4_system.pkl',
                           'pickle_p4_numpy_exec.pkl', 'absurd_size.pth')]

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp('hostile'); marker = d/'MARKER'
    files = corpus(d/'corpus', marker)
    assert set(TORCH_FILES) <= set(files)
    return files, marker

def _loaders():
    from rsnb.classification.pretrained import load_imagenet
    from rsnb.classification.model import SceneClassifier
    from rsnb.segmentation.models import light_model, load_imagenet_encoder
    from rsnb.segmentation.ssl import ssl_encoder_state
    from rsnb.inpainting.losses import VGGFeatures
    return {'load_imagenet': lambda p: load_imagenet(SceneClassifier(n_classes=3, arch='tf_efficientnet_lite0'), path=p),
            'load_imagenet_encoder': lambda p: load_imagenet_encoder(light_model('fpn', n_classes=2), path=p),
            'ssl_encoder_state': lambda p: ssl_encoder_state(p),
            'VGGFeatures': lambda p: VGGFeatures(weights=p)}

def _check(fn, path, marker):
    with pytest.raises(RsnbError) as e: fn(path)
    msg = str(e.value)
    assert not marker.exists(), f'payload ran through {path}'
    assert '\n' not in msg and str(path) in msg, msg
    if 'SHA-256' in msg: return                 # a checksummed file (ImageNet weights) is refused before it is read
    if path.name.startswith('absurd'): assert 'nothing was allocated' in msg or 'too big' in msg or 'declares' in msg, msg
    else: assert 'refused' in msg, msg

@pytest.mark.parametrize('name', ['load_imagenet', 'load_imagenet_encoder', 'ssl_encoder_state', 'VGGFeatures'])
def test_loader_refuses_corpus(world, name):
    files, marker = world
    fn = _loaders()[name]
    for k in TORCH_FILES: _check(fn, files[k], marker)

def test_lpips_weights_refused(world, tmp_path, monkeypatch):
    "The LPIPS weights are found by file name in the weights folders: a hostile file under that name is refused."
    from rsnb import metrics
    files, marker = world
    for k in ('torch_zip.pth', 'torch_legacy.pth', 'absurd_size.pth'):
        d = tmp_path/k; d.mkdir()
        shutil.copy(files[k], d/metrics.LPIPS_WEIGHTS['alex'])
        monkeypatch.setenv('RSNB_WEIGHTS', str(d))
        metrics._lpips_cached.cache_clear()
        _check(lambda p: metrics.lpips_model('alex'), d/metrics.LPIPS_WEIGHTS['alex'], marker)
    metrics._lpips_cached.cache_clear()
