"""Parity fixture for Bahri et al. 2019 (NASNet-A Mobile + SE head): run the ORIGINAL `model.py` in tf-keras.

Run in a venv of its own (never a dependency of rsnb):

    python3 -m venv /work/venvs/tf && /work/venvs/tf/bin/pip install tensorflow-cpu tf-keras h5py
    TF_USE_LEGACY_KERAS=1 /work/venvs/tf/bin/python tools/parity/bahri.py --repo /path/to/bahri-checkout \
        [--size 160 --classes 30 --seed 0 --out tests/fixtures/parity/bahri]

`--repo` is a local checkout (or `git archive` work tree) of AliBahri94/Remote-Sensing-Image-Classification-via-
Improved-Cross-Entropy-Loss-and-Transfer-Learning-Strategy; its `model.py` is imported as it is, with three shims
(its code targets Keras 2.2.5 and is never copied here): `keras` is tf-keras, `tensor._keras_shape` is the static
shape, `NASNetMobile(weights='imagenet')` is built with `weights=None` (no download; the weights come from the seed
rule) and the hard-coded `Dense(21, activation='softmax')` gets `--classes` units.

Writes (all small): `manifest_tfkeras.json` (layer names in file order, weight names and shapes, as tf-keras writes
the Keras-2 `.h5`), `manifest_keras225.json` (the same with Keras 2.2.5's auto-names, see `keras225_name`),
`model_config.json.gz` (the `.h5`'s `model_config` attribute), `input.npy` (uint8 images), `outputs.npz`
(softmax probabilities, logits, the backbone's feature map) and `versions.json`.

Seed rule (rsnb's `classification.keras.seeded_weights` regenerates it with numpy): weight `i` of the manifest
(file order) is drawn from `np.random.default_rng([seed, i])`: kernels `N(0,1)·sqrt(2/fan_in)` (fan_in: product of
all dims but the last; depthwise kernels kh·kw), biases and BN beta / moving_mean `0.1·N(0,1)`, BN gamma `U(0.5, 1)`,
moving_variance `U(1, 2)`; float32.
"""
import argparse, gzip, json, os, platform, re, sys, tempfile, types
from pathlib import Path
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1'); os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import numpy as np

AUTO = re.compile(r'(activation|zero_padding2d|cropping2d|add|dense|reshape|multiply|max_pooling2d|'
                  r'global_average_pooling2d|dropout|concatenate)(?:_(\d+))?')

def keras225_name(name):
    "Keras 2.2.5 numbers auto-named layers from 1 in a fresh session (`dense_1`), tf-keras from 0 (`dense`)."
    m = AUTO.fullmatch(name)
    if not m: return name
    return f'{m[1]}_{int(m[2] or 0) + 1}'

def seeded(name, shape, i, seed):
    "The seed rule (see the module docstring)."
    rng = np.random.default_rng([seed, i]); leaf = name.split('/')[-1].split(':')[0]
    if leaf in ('kernel', 'depthwise_kernel', 'pointwise_kernel'):
        fan = int(np.prod(shape[:2])) if leaf == 'depthwise_kernel' else int(np.prod(shape[:-1]))
        a = rng.standard_normal(shape)*np.sqrt(2/fan)
    elif leaf in ('bias', 'beta', 'moving_mean'): a = 0.1*rng.standard_normal(shape)
    elif leaf == 'gamma': a = rng.uniform(0.5, 1.0, shape)
    elif leaf == 'moving_variance': a = rng.uniform(1.0, 2.0, shape)
    else: raise ValueError(f'no seed rule for {name}')
    return a.astype(np.float32)

def build(repo, size, classes):
    import tf_keras, tf_keras.layers, tf_keras.backend, tf_keras.applications, tf_keras.models
    from tf_keras.src.engine.keras_tensor import KerasTensor
    KerasTensor._keras_shape = property(lambda t: tuple(t.shape))
    for n in ('', '.layers', '.backend', '.applications', '.models'): sys.modules['keras'+n] = eval('tf_keras'+n)
    nas = tf_keras.applications.NASNetMobile
    def nasnet(**kw): return nas(**{**kw, 'weights': None})
    tf_keras.applications.NASNetMobile = nasnet
    sys.path.insert(0, str(repo))
    import model as bahri
    dense = bahri.Dense
    bahri.Dense = lambda units, **kw: dense(classes if kw.get('activation') == 'softmax' else units, **kw)
    return bahri.model((size, size, 3))

def manifest_of(h5file):
    import h5py
    with h5py.File(h5file, 'r') as f:
        g = f['model_weights']
        layers = [n.decode() if isinstance(n, bytes) else n for n in g.attrs['layer_names']]
        out = []
        for l in layers:
            wn = [w.decode() if isinstance(w, bytes) else w for w in g[l].attrs['weight_names']]
            out.append(dict(layer=l, weights=[dict(name=w, shape=list(g[l][w].shape)) for w in wn]))
        cfg = f.attrs['model_config']; cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
        attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items() if k in ('keras_version', 'backend')}
    return out, cfg, attrs

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', required=True, help='local checkout of the Bahri repository (model.py)')
    ap.add_argument('--size', type=int, default=160); ap.add_argument('--classes', type=int, default=30)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--n', type=int, default=2)
    ap.add_argument('--out', default='tests/fixtures/parity/bahri')
    a = ap.parse_args(argv)
    import tensorflow as tf, tf_keras, h5py
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    model = build(a.repo, a.size, a.classes)
    i = 0
    for layer in model.layers:
        ws = []
        for w in layer.weights:
            ws.append(seeded(w.name, tuple(w.shape), i, a.seed)); i += 1
        if ws: layer.set_weights(ws)
    with tempfile.TemporaryDirectory() as d:
        h5 = Path(d)/'model.h5'
        model.save(h5, save_format='h5')
        man, cfg, attrs = manifest_of(h5)
    # the file's weight order must be the order the seed rule used
    flat = [w for l in man for w in l['weights']]
    assert len(flat) == i, (len(flat), i)
    rng = np.random.default_rng(a.seed)
    img = rng.integers(0, 256, (a.n, a.size, a.size, 3), dtype=np.uint8)
    x = img.astype(np.float32)/255          # train.py / predict.py: ImageDataGenerator(rescale=1./255)
    probs = model.predict(x, verbose=0)
    last = model.layers[-1]
    mul = next(l for l in model.layers if type(l).__name__ == 'Multiply')   # SE: features * excitation
    pre = tf_keras.Model(model.input, [last.input, mul.input[0]])
    hidden, feat = pre.predict(x, verbose=0)
    W, b = last.get_weights()
    logits = hidden.astype(np.float64) @ W.astype(np.float64) + b
    np.save(out/'input.npy', img)
    np.savez_compressed(out/'outputs.npz', probs=probs.astype(np.float32), logits=logits.astype(np.float32),
                        features=feat.astype(np.float32))
    meta = dict(size=a.size, classes=a.classes, seed=a.seed, n_images=a.n, backbone_output_layer=mul.input[0].name,
                normalisation='x/255 (ImageDataGenerator(rescale=1./255) in train.py and predict.py)', **attrs)
    (out/'manifest_tfkeras.json').write_text(json.dumps(dict(meta=meta, layers=man), indent=0))
    man225 = [dict(layer=keras225_name(l['layer']), weights=[dict(name='/'.join([keras225_name(w['name'].split('/')[0])] + w['name'].split('/')[1:]), shape=w['shape']) for w in l['weights']]) for l in man]
    (out/'manifest_keras225.json').write_text(json.dumps(dict(meta={**meta, 'keras_version': '2.2.5',
        'derived': 'from the tf-keras manifest: auto-named layers numbered from 1 (dense -> dense_1, activation_5 -> activation_6); not run in Keras 2.2.5'},
        layers=man225), indent=0))
    with gzip.open(out/'model_config.json.gz', 'wt') as f: f.write(cfg)
    vers = dict(tensorflow=tf.__version__, tf_keras=tf_keras.__version__, h5py=h5py.__version__, numpy=np.__version__,
                python=platform.python_version(), original='AliBahri94/Remote-Sensing-Image-Classification-via-Improved-Cross-Entropy-Loss-and-Transfer-Learning-Strategy@cb9bd9b model.py')
    (out/'versions.json').write_text(json.dumps(vers, indent=1))
    print(json.dumps(dict(tensors=len(flat), params=int(sum(np.prod(w['shape']) for w in flat)),
                          probs_max=float(probs.max()), logits_std=float(logits.std()), feat_absmax=float(np.abs(feat).max()))))

if __name__ == '__main__': main()
