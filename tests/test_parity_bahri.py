"Parity of rsnb's Keras converter + NASNet-A Mobile (Keras-exact) with Bahri et al.'s model run in tf-keras (fixtures from tools/parity/bahri.py)."
import gzip, json
from pathlib import Path
import numpy as np
import pytest
import torch

h5py = pytest.importorskip('h5py')
from rsnb.convert import ConversionError
from rsnb.classification.keras import convert_bahri_h5, seeded_weights, write_keras_h5, read_keras_h5
from rsnb.classification.learner import load_scene_model
from rsnb.weights import save_model, registry

FX = Path(__file__).parent/'fixtures'/'parity'/'bahri'

def _rel(a, b): return float(np.abs(a - b).max()/np.abs(b).max())

@pytest.fixture(scope='module')
def ref():
    cfg = gzip.open(FX/'model_config.json.gz', 'rt').read()
    x = torch.from_numpy(np.load(FX/'input.npy').astype(np.float32)/255).permute(0, 3, 1, 2)
    return cfg, x, np.load(FX/'outputs.npz')

@pytest.mark.parametrize('naming', ['keras225', 'tfkeras'])
def test_logits_and_probs_match_tf_keras(tmp_path, ref, naming):
    torch.set_num_threads(1)
    cfg, x, out = ref
    man = json.loads((FX/f'manifest_{naming}.json').read_text())
    h5 = write_keras_h5(tmp_path/'m.h5', man, seeded_weights(man, man['meta']['seed']), cfg, keras_version=man['meta']['keras_version'])
    model, card = convert_bahri_h5(h5, dict(n_classes=30))
    with torch.no_grad(): logits = model(x).numpy()
    probs = torch.from_numpy(logits).softmax(1).numpy()
    assert _rel(logits, out['logits']) < 1e-4 and _rel(probs, out['probs']) < 1e-4
    assert card['input_size'] == 160 and card['arch'] == 'nasnetamobile_keras' and card['faithful']
    # the card rebuilds the same model through the learner's loader
    save_model(model, tmp_path/'bahri', card)
    m2, c2 = load_scene_model(tmp_path/'bahri')
    with torch.no_grad(): assert torch.equal(m2(x), model(x))

def test_manifest_counts():
    man = json.loads((FX/'manifest_tfkeras.json').read_text())
    w = [w for l in man['layers'] for w in l['weights']]
    assert len(w) == 1132
    assert sum(int(np.prod(t['shape'])) for t in w) == 5_605_258          # 5,568,520 trainable + 36,738 BN statistics
    k225 = json.loads((FX/'manifest_keras225.json').read_text())
    assert [l['layer'] for l in k225['layers'] if l['layer'].startswith('dense')] == [f'dense_{i}' for i in range(1, 6)]

def test_bad_files(tmp_path, ref):
    cfg, _, _ = ref
    other = dict(layers=[dict(layer='conv1', weights=[dict(name='conv1/kernel:0', shape=[3, 3, 3, 8])])])
    p = write_keras_h5(tmp_path/'other.h5', other, seeded_weights(other), None)
    with pytest.raises(ConversionError, match='other.h5.*weights-only'): convert_bahri_h5(p)
    (tmp_path/'x.h5').write_bytes(b'\x89HDF\r\n')
    with pytest.raises(ConversionError, match='x.h5: not an HDF5 file'): read_keras_h5(tmp_path/'x.h5')
    man = json.loads((FX/'manifest_tfkeras.json').read_text())
    man['layers'] = [l for l in man['layers'] if l['layer'] != 'stem_bn1']
    p = write_keras_h5(tmp_path/'miss.h5', man, seeded_weights(man), cfg)
    with pytest.raises(ConversionError, match="miss.h5: rsnb parameter 'backbone.m.conv0.bn"): convert_bahri_h5(p)

def test_registry_entries():
    r = {k: v for k, v in registry().items() if k.startswith('bahri2019-')}
    assert len(r) == 5
    for e in r.values():
        assert e['url'] == f"https://drive.google.com/uc?export=download&id={e['gdrive_id']}"
        assert len(e['config']['classes']) == e['config']['n_classes'] == {'aid': 30, 'ucm': 21, 'nwpu': 45}[e['config']['dataset']]
        assert e['config']['classes'] == sorted(e['config']['classes'])
