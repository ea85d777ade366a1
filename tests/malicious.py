"""A corpus of hostile files for the trust-boundary tests: every file here runs code when it is loaded the unsafe way
(`pickle.load`, `torch.load(weights_only=False)`, `yaml.unsafe_load`, Keras `load_model`), and that code only creates
a marker file. A test feeds each file to an rsnb entry point and asserts that the marker never appears and that the
error is one clear line. `test_malicious_corpus.py` proves the corpus is live: loaded unsafely, each file does
create its marker (so a test that finds no marker is not passing by accident).

`corpus(folder, marker)` writes every file and returns `{name: path}`; names say the format and the payload route:
- pickles, protocol 2 and 4: `builtins.exec`, `os.system`, and a global of a numpy module that calls `exec`
  (`numpy.testing._private.utils.runstring`: an unpickler that admits "anything from numpy" runs it);
- torch files, zip format and the legacy (pre-1.6) format, saved as `.pth`, `.pth.tar` and `.pt`, with the payload
  beside a real state dict, and wrapped as `{'net': ...}` / `{'state_dict': ...}` the way released files are;
- `.pdparams` (Paddle's pickled dict of numpy arrays) with the payload among the arrays;
- `.h5` in Keras 2's full-model layout whose `model_config` holds a `Lambda` layer with marshalled code, and an
  attribute holding a pickle;
- YAML with `!!python/object/apply` tags (for `--params`, `--set` and a run folder's `params.yaml`);
- a torch zip file declaring a tensor of 2**40 float32 elements (4 TiB) backed by 4 bytes (`absurd_size`).
"""
import base64, io, json, marshal, os, pickle, zipfile
from collections import OrderedDict
from pathlib import Path
import numpy as np

def payload_code(marker) -> str:
    "Python source that creates `marker` (the only thing any payload does)."
    return f"open({str(marker)!r}, 'w').write('payload ran')"

class Exec:
    "Pickles to `builtins.exec(code)`."
    def __init__(self, code): self.code = code
    def __reduce__(self): return (exec, (self.code,))

class System:
    "Pickles to `os.system('touch marker')` (the `posix.system` global)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch '{self.marker}'",))

class NumpyExec:
    "Pickles to a global of a numpy module that calls `exec`: an unpickler admitting every `numpy.*` global runs it."
    def __init__(self, code): self.code = code
    def __reduce__(self):
        from numpy.testing._private.utils import runstring
        return (runstring, (self.code, {}))

def _state_dict():
    import torch
    return OrderedDict([('conv.weight', torch.zeros(2, 1, 3, 3)), ('conv.bias', torch.zeros(2))])

def write_pickle(path, obj, protocol=4):
    path = Path(path)
    with open(path, 'wb') as f: pickle.dump(obj, f, protocol=protocol)
    return path

def write_torch(path, obj, zip_format=True):
    import torch
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return Path(path)

def write_keras_h5(path, marker):
    "A Keras-2-layout full-model `.h5` whose `model_config` has a Lambda layer with marshalled code (Keras runs it on load)."
    import h5py
    def f(x): return x
    code = compile(payload_code(marker) + '\nlambda x: x', '<lambda>', 'exec')
    fn = base64.b64encode(marshal.dumps(code)).decode()
    cfg = dict(class_name='Model', config=dict(name='m', layers=[
        dict(class_name='InputLayer', name='input_1', config=dict(batch_input_shape=[None, 4], dtype='float32', name='input_1'), inbound_nodes=[]),
        dict(class_name='Lambda', name='lambda_1', config=dict(name='lambda_1', function=[fn, None, None], function_type='lambda',
                                                                output_shape=None, arguments={}),
             inbound_nodes=[[['input_1', 0, 0, {}]]])], input_layers=[['input_1', 0, 0]], output_layers=[['lambda_1', 0, 0]]))
    with h5py.File(path, 'w') as h:
        h.attrs['keras_version'] = b'2.2.5'; h.attrs['backend'] = b'tensorflow'
        h.attrs['model_config'] = json.dumps(cfg).encode()
        h.attrs['training_config'] = np.void(pickle.dumps(Exec(payload_code(marker)), protocol=2))   # a pickle in an attribute
        g = h.create_group('model_weights'); g.attrs['layer_names'] = [b'dense_1']
        d = g.create_group('dense_1'); d.attrs['weight_names'] = [b'dense_1/kernel:0']
        d.create_group('dense_1').create_dataset('kernel:0', data=np.zeros((4, 2), np.float32))
    return Path(path)

def write_yaml(path, marker):
    "A params file whose value is built by `exec` under `yaml.unsafe_load` (`yaml.safe_load` refuses the tag)."
    Path(path).write_text(f"seed: 0\nlr: !!python/object/apply:builtins.exec [\"{payload_code(marker)}\"]\n")
    return Path(path)

def yaml_set_value(marker) -> str:
    "A `--set KEY=VALUE` value carrying the same tag."
    return f"!!python/object/apply:builtins.exec [\"{payload_code(marker)}\"]"

class _BigStorage: pass

class _BigTensor:
    "Pickles as torch's own tensor rebuild over a storage whose declared size is `numel`."
    def __init__(self, numel): self.numel = numel
    def __reduce__(self):
        import torch
        return (torch._utils._rebuild_tensor_v2, (_BigStorage(), 0, (self.numel,), (1,), False, OrderedDict()))

def write_absurd_torch(path, numel=2**40):
    "A zip-format torch file whose one tensor declares `numel` float32 elements but stores 4 bytes."
    import torch
    buf = io.BytesIO(); torch.save({'w': torch.zeros(1)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z: members = {n: z.read(n) for n in z.namelist()}
    prefix = next(n for n in members if n.endswith('data.pkl'))[:-len('data.pkl')]
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _BigStorage): return ('storage', torch.FloatStorage, '0', 'cpu', numel)
            return None
    pk = io.BytesIO(); P(pk, protocol=2).dump({'w': _BigTensor(numel)})
    members[prefix + 'data.pkl'] = pk.getvalue()
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        for n, b in members.items(): z.writestr(n, b)
    return Path(path)

def corpus(folder, marker) -> dict:
    "Write every hostile file into `folder` (each creates `marker` if loaded unsafely); `{name: path}`."
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    code, out = payload_code(marker), {}
    for proto in (2, 4):
        out[f'pickle_p{proto}_exec.pkl'] = write_pickle(folder/f'exec_p{proto}.pkl', {'w': np.zeros(2, np.float32), 'x': Exec(code)}, proto)
        out[f'pickle_p{proto}_system.pkl'] = write_pickle(folder/f'system_p{proto}.pkl', {'x': System(marker)}, proto)
        out[f'pickle_p{proto}_numpy_exec.pkl'] = write_pickle(folder/f'npexec_p{proto}.pkl', {'x': NumpyExec(code)}, proto)
        out[f'pdparams_p{proto}_exec'] = write_pickle(folder/f'model_p{proto}.pdparams',
                                                      {'conv.weight': np.zeros((2, 1, 3, 3), np.float32), 'StructuredToParameterName@@': {}, 'x': Exec(code)}, proto)
        out[f'pdparams_p{proto}_numpy_exec'] = write_pickle(folder/f'np_p{proto}.pdparams',
                                                            {'conv.weight': np.zeros((2, 1, 3, 3), np.float32), 'x': NumpyExec(code)}, proto)
    for zf, tag in ((True, 'zip'), (False, 'legacy')):
        out[f'torch_{tag}.pth'] = write_torch(folder/f'{tag}.pth', {**_state_dict(), 'x': Exec(code)}, zf)
        out[f'torch_{tag}_net.pth'] = write_torch(folder/f'{tag}_net.pth', {'net': _state_dict(), 'optimizer': Exec(code)}, zf)
        out[f'torch_{tag}.pth.tar'] = write_torch(folder/f'{tag}-1-00000000.pth.tar', {'state_dict': _state_dict(), 'x': System(marker)}, zf)
        out[f'torch_{tag}_checkpoint.pth'] = write_torch(folder/f'{tag}_checkpoint.pth', {'model': _state_dict(), 'rng': Exec(code)}, zf)
    out['keras.h5'] = write_keras_h5(folder/'model.h5', marker)
    out['params.yaml'] = write_yaml(folder/'params.yaml', marker)
    out['absurd_size.pth'] = write_absurd_torch(folder/'absurd.pth')
    return out

def unsafe_load(path):
    "Load `path` the unsafe way its format invites (used only to prove the corpus is live, in a child process)."
    path = Path(path); name = path.name
    if name.endswith('.yaml'):
        import yaml; return yaml.unsafe_load(path.read_text())
    if name.endswith('.h5'):
        import h5py
        with h5py.File(path, 'r') as h:
            cfg = json.loads(h.attrs['model_config'])
            fn = cfg['config']['layers'][1]['config']['function'][0]
            exec(marshal.loads(base64.b64decode(fn)), {})   # what Keras' Lambda deserialisation does
            return pickle.loads(h.attrs['training_config'].tobytes())
    if name.endswith(('.pkl', '.pdparams')):
        with open(path, 'rb') as f: return pickle.load(f)
    import torch; return torch.load(path, weights_only=False, map_location='cpu')
