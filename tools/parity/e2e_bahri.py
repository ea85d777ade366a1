"""End-to-end fixture for Bahri et al. 2019: the original's own `predict.py` (`evaluate_model`) on an ImageFolder split.

    /work/h26-parity/.venv/bin/python -c "import test_e2e_bahri as t; t.make_split('/tmp/ucm_e2e')"    # from tests/
    TF_USE_LEGACY_KERAS=1 nice -n 10 /work/venvs/tf/bin/python tools/parity/e2e_bahri.py --repo /work/refs/bahri \\
        --data /tmp/ucm_e2e/valid --out tests/fixtures/e2e/bahri

Venv: `tensorflow-cpu tf-keras h5py Pillow scikit-image scikit-learn` (the network harness `bahri.py` plus what
`predict.py` imports). The original (no licence) is imported from its work tree, never copied.

What runs: `predict.evaluate_model()` with its `config.py` as written except the two paths it asks the user to set
(`Dataset_Address_Evaluate`, `Trained_Model_Path`): `ImageDataGenerator(rescale=1./255).flow_from_directory(valid,
target_size=(256, 256), batch_size=1, shuffle=False)`, `load_model(h5, custom_objects={'New_loss3': New_loss3})`,
`compile(SGD, loss=ICE)`, `predict_generator`, `argmax`. The network is the original's `model.py` at its training size
(`Input_Shape` 256×256×3) with its own `Dense(21)` (UC Merced's 21 classes), built with the shims of `bahri.py`
(`keras` = tf-keras, `_keras_shape`, `NASNetMobile(weights=None)`).

Shims for `predict.py` (in memory): `New_loss3`, which the released files were compiled with and which is defined
nowhere, is the ICE loss of `loss_function.py` (`loss_function.New_loss3 = ICE`); `keras.engine` (`Layer`,
`InputSpec`) and `keras.utils.conv_utils` point at tf-keras's; `keras.optimizers.SGD(lr=...)` takes `lr` as
`learning_rate`. Hooks (observation only): `flow_from_directory` and `Model.predict_generator` wrapped to keep the
file list, classes and probabilities.

Data: the UC Merced layout of `tests/rehearsal_data.make_ucm` (21 classes × 2 real 256-px images, TIFF), as the
`valid/` ImageFolder split. At 256 px `flow_from_directory`'s resize is the identity, so rsnb's tiling sees the same
pixels. Weights: the seed rule of `bahri.py` (seed 0, file order), then the softmax layer's bias shifted by minus the
mean log-probability of each class over the split (first pass; recorded), so that the predictions spread over classes.
The file is written by tf-keras's `model.save(h5)` after `compile(loss=New_loss3)` (as ModelCheckpoint wrote the
released ones).
"""
import argparse, gzip, json, os, platform, sys, tempfile, types
from pathlib import Path
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1'); os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bahri as net_harness      # the network harness: build(), seeded(), manifest_of()

SIZE, CLASSES = 256, 21

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repo', type=Path, required=True); ap.add_argument('--data', type=Path, required=True)
    ap.add_argument('--out', type=Path, required=True)
    a = ap.parse_args()
    import tensorflow as tf, tf_keras, h5py
    model = net_harness.build(str(a.repo.resolve()), SIZE, CLASSES)
    i = 0
    for layer in model.layers:
        ws = []
        for w in layer.weights: ws.append(net_harness.seeded(w.name, tuple(w.shape), i, 0)); i += 1
        if ws: layer.set_weights(ws)
    # predict.py's imports, shimmed
    eng = types.ModuleType('keras.engine'); eng.Layer = tf_keras.layers.Layer; eng.InputSpec = tf_keras.layers.InputSpec
    sys.modules['keras.engine'] = eng
    from tf_keras.src.utils import conv_utils
    sys.modules['keras.utils.conv_utils'] = conv_utils; tf_keras.utils.conv_utils = conv_utils
    import tf_keras.preprocessing.image, tf_keras.optimizers
    sys.modules['keras.preprocessing'] = tf_keras.preprocessing; sys.modules['keras.preprocessing.image'] = tf_keras.preprocessing.image
    sys.modules['keras.optimizers'] = tf_keras.optimizers
    sgd = tf_keras.optimizers.SGD
    tf_keras.optimizers.SGD = lambda lr=0.01, **kw: sgd(learning_rate=lr, **kw)
    import loss_function
    loss_function.New_loss3 = loss_function.ICE
    rec = {}
    fd = tf_keras.preprocessing.image.ImageDataGenerator.flow_from_directory
    def flow(self, *args, **kw):
        it = fd(self, *args, **kw); rec['it'] = it; return it
    tf_keras.preprocessing.image.ImageDataGenerator.flow_from_directory = flow
    pg = tf_keras.Model.predict_generator
    def predict_generator(self, *args, **kw):
        p = pg(self, *args, **kw); rec['probs'] = np.asarray(p); rec['model'] = self; return p
    tf_keras.Model.predict_generator = predict_generator
    import predict, config
    tmp = Path(tempfile.mkdtemp())
    config.cfg['Dataset_Address_Evaluate'] = str(a.data.resolve())
    def New_loss3(y_true, y_pred): return loss_function.ICE(y_true, y_pred)
    def save(path):
        model.compile(optimizer=sgd(learning_rate=1e-3, momentum=0.9), loss=New_loss3, metrics=['accuracy'])
        model.save(path, save_format='h5')
    def run(path):
        config.cfg['Trained_Model_Path'] = str(path)
        predict.cfg.update(config.cfg)
        predict.evaluate_model()
        return rec['probs']
    save(tmp/'m0.h5'); p0 = run(tmp/'m0.h5')
    last = model.layers[-1]
    W, b = last.get_weights()
    shift = -np.log(np.clip(p0, 1e-30, 1)).mean(0)
    b = (b + shift).astype(np.float32); last.set_weights([W, b])
    save(tmp/'model.h5')
    probs = run(tmp/'model.h5')
    it, m = rec['it'], rec['model']
    hidden = tf_keras.Model(m.input, m.layers[-1].input).predict(np.concatenate([it[k][0] for k in range(len(it))]), verbose=0)
    W2, b2 = m.layers[-1].get_weights()
    logits = hidden.astype(np.float64) @ W2.astype(np.float64) + b2
    pred = probs.argmax(-1)
    srt = np.sort(probs, -1)
    man, cfg, attrs = net_harness.manifest_of(tmp/'model.h5')
    a.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out/'outputs.npz', probs=probs.astype(np.float32), logits=logits.astype(np.float32), pred=pred, labels=np.asarray(it.classes))
    (a.out/'manifest.json.gz').write_bytes(gzip.compress(json.dumps(dict(meta=dict(size=SIZE, classes=CLASSES, seed=0, **attrs), layers=man)).encode(), mtime=0))
    (a.out/'model_config.json.gz').write_bytes(gzip.compress(cfg.encode(), mtime=0))
    info = dict(files=[str(f) for f in it.filenames], class_indices=it.class_indices, n_images=len(pred),
                bias_shift={'layer': last.name, 'weight': 'bias', 'value': [float(x) for x in shift]},
                accuracy=float((pred == it.classes).mean()), predicted_classes=int(len(set(pred.tolist()))),
                top2_margin_min=float((srt[:, -1] - srt[:, -2]).min()),
                versions=dict(original='AliBahri94/Remote-Sensing-Image-Classification-via-Improved-Cross-Entropy-Loss-and-Transfer-Learning-Strategy',
                              commit='cb9bd9b', entry='predict.evaluate_model() (config: Dataset_Address_Evaluate, Trained_Model_Path set)',
                              tensorflow=tf.__version__, tf_keras=tf_keras.__version__, h5py=h5py.__version__, numpy=np.__version__,
                              python=platform.python_version()),
                data='tests/rehearsal_data.make_ucm (21 classes x 2, 256 px TIFF) as valid/<class>/')
    (a.out/'fixture.json').write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ('accuracy', 'predicted_classes', 'top2_margin_min', 'n_images')}))

if __name__ == '__main__': main()
