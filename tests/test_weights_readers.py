"""rsnb's one reader per checkpoint format (`rsnb.weights`: `scan_torch`/`load_torch`, `read_pdparams`, `open_h5`/`h5_array`):
what real files hold loads exactly as torch/numpy load it; what a crafted file declares beyond its bytes, or stores
elsewhere, is refused before anything is allocated or read."""
import collections, io, pickle, re
from pathlib import Path

import numpy as np
import pytest
import torch

from rsnb import weights as W
from rsnb.core import ModelError

# --- torch files: what real checkpoints hold ---------------------------------------------------------------------

def _training_checkpoint():
    lin = torch.nn.Linear(3, 2); opt = torch.optim.Adam(lin.parameters())
    lin(torch.ones(1, 3)).sum().backward(); opt.step()
    base = torch.arange(12.).reshape(3, 4)
    return {'net': lin.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3, 'best': 0.5, 'name': 'run', 'view': base[1:, 2:],
            'base': base, 'p': torch.nn.Parameter(torch.ones(2)), 'bf16': torch.ones(2, dtype=torch.bfloat16),
            'i64': torch.tensor([1, 2]), 'b': torch.tensor([True]), 'size': torch.Size([2, 3]), 'dev': torch.device('cpu'),
            'dtype': torch.float16, 'empty': torch.zeros(0, 3), 'scalar': torch.tensor(3.), 'bytes': b'\x00\x01', 'nested': [{'a': (1, 2.5)}]}

@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_torch_files_load_as_torch_loads_them(tmp_path, zip_format):
    obj = _training_checkpoint()
    p = tmp_path/'ckpt.pth.tar'; torch.save(obj, p, _use_new_zipfile_serialization=zip_format)
    got, ref = W.load_torch(p), torch.load(p, weights_only=True)
    assert got.keys() == ref.keys() and got['epoch'] == 3 and got['size'] == (2, 3) and got['dtype'] == torch.float16
    for k in ('view', 'base', 'bf16', 'i64', 'p', 'empty'): assert torch.equal(got[k], ref[k]), k
    assert torch.equal(got['net']['weight'], obj['net']['weight'])
    scan = W.scan_torch(p)
    assert scan['view'].shape == (2, 2) and scan['bf16'].dtype == 'bfloat16' and scan['empty'].shape == (0, 3)
    assert W.state_dict_of(scan, p, kind=W.TensorInfo).keys() == {'weight', 'bias'}

def test_torchscript_archives_are_refused(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path/'m.pt')
    with pytest.raises(ModelError, match=r'm\.pt: refused: loading it would call __torch__'): W.load_torch(tmp_path/'m.pt')

def _legacy_absurd(path, numel, stored=4):
    "A legacy-format (torch < 1.6) file whose one float32 storage declares `numel` values and stores `stored` bytes."
    class Storage: pass
    class Big:
        def __reduce__(self): return (torch._utils._rebuild_tensor_v2, (Storage(), 0, (numel,), (1,), False, collections.OrderedDict()))
    class P(pickle.Pickler):
        def persistent_id(self, o): return ('storage', torch.FloatStorage, '0', 'cpu', numel, None) if isinstance(o, Storage) else None
    f = io.BytesIO()
    for x in (0x1950a86a20f9469cfc6c, 1001, {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {}}): pickle.dump(x, f, protocol=2)
    P(f, protocol=2).dump({'w': Big()}); pickle.dump(['0'], f, protocol=2)
    f.write(numel.to_bytes(8, 'little') + b'\0' * stored)
    Path(path).write_bytes(f.getvalue())

def test_legacy_format_sizes_are_checked_before_allocation(tmp_path):
    _legacy_absurd(tmp_path/'ok.pth', 1)
    assert W.load_torch(tmp_path/'ok.pth')['w'].shape == (1,)    # the crafted layout is the real one: it loads
    _legacy_absurd(tmp_path/'absurd.pth', 2**40)
    with pytest.raises(W.UnsafeCheckpoint, match=r'absurd\.pth: refused: a tensor declares 1,099,511,627,776 float values \(4 TiB\) but the file holds 4 bytes'):
        W.load_torch(tmp_path/'absurd.pth')
    _legacy_absurd(tmp_path/'short.pth', 1000)
    with pytest.raises(W.UnsafeCheckpoint, match='declares 1,000 float values'): W.scan_torch(tmp_path/'short.pth')

def test_truncated_and_foreign_files_are_one_line(tmp_path):
    torch.save(_training_checkpoint(), tmp_path/'full.pth')
    (tmp_path/'cut.pth').write_bytes((tmp_path/'full.pth').read_bytes()[:700])
    (tmp_path/'text.pth').write_text('hello')
    for f in ('cut.pth', 'text.pth'):
        with pytest.raises(ModelError) as e: W.load_torch(tmp_path/f)
        assert str(e.value).startswith(f'{tmp_path/f}: not a readable torch checkpoint') and '\n' not in str(e.value)

# --- .pdparams ---------------------------------------------------------------------------------------------------

ARRAYS = collections.OrderedDict(w=np.random.default_rng(0).random((2, 3)).astype(np.float32), f=np.asfortranarray(np.arange(12.).reshape(3, 4)),
                                 be=np.arange(5, dtype='>i4'), b=np.array([True, False]), h=np.ones(3, np.float16),
                                 c=np.ones(2, np.complex64), e=np.zeros((0, 3), np.float32), z=np.array(7.0), i8=np.arange(3, dtype=np.int8))

@pytest.mark.parametrize('protocol', [2, 3, 4])
def test_pdparams_read_as_numpy_writes_them(tmp_path, protocol):
    p = tmp_path/'model.pdparams'
    with open(p, 'wb') as f: pickle.dump({**ARRAYS, 's': np.float32(2.5), 'StructuredToParameterName@@': {'w': 'p0'}}, f, protocol=protocol)
    got = W.read_pdparams(p)
    assert got.keys() == ARRAYS.keys()
    for k, v in ARRAYS.items(): assert got[k].dtype == v.dtype and np.array_equal(got[k], v) and got[k].flags.writeable, k

@pytest.mark.parametrize('value,text', [(np.array([1, 'a'], dtype=object), 'array of Python objects'),
                                        (np.zeros(2, dtype=[('a', 'f4'), ('b', 'i4')]), 'structured or sub-array'),
                                        (np.array(['ab', 'cd']), "is not a plain number type")])
def test_pdparams_of_other_things_are_refused(tmp_path, value, text):
    with open(tmp_path/'x.pdparams', 'wb') as f: pickle.dump({'w': value}, f, protocol=4)
    with pytest.raises(ModelError, match=text): W.read_pdparams(tmp_path/'x.pdparams')

def test_pdparams_allow_list_is_exact(tmp_path):
    "Even numpy's own globals beyond the exact list (here `numpy.frombuffer`, `numpy.load`) are refused."
    for fn in (np.frombuffer, np.load):
        class C:
            def __reduce__(self, fn=fn): return (fn, (b'\0' * 4,))
        with open(tmp_path/'x.pdparams', 'wb') as f: pickle.dump({'w': C()}, f, protocol=4)
        with pytest.raises(W.UnsafeCheckpoint, match=f'refused: loading it would call numpy.{fn.__name__}'): W.read_pdparams(tmp_path/'x.pdparams')

# --- HDF5 ----------------------------------------------------------------------------------------------------------

h5py = pytest.importorskip('h5py')

def test_h5_arrays_are_data_checked_against_their_storage(tmp_path):
    p = tmp_path/'w.h5'
    with h5py.File(p, 'w') as f:
        f.create_dataset('plain', data=np.arange(6, dtype=np.float32).reshape(2, 3))
        f.create_dataset('packed', data=np.zeros((256, 256), np.float32), compression='gzip')
        f.create_dataset('huge', shape=(2**20, 2**12), dtype='f4', chunks=(16, 16))   # declared 16 GiB, nothing stored
        f.create_dataset('text', data=np.array([b'abc']))
        (tmp_path/'raw.bin').write_bytes(np.arange(4, dtype=np.float32).tobytes())
        f.create_dataset('outside', shape=(4,), dtype='f4', external=[(str(tmp_path/'raw.bin'), 0, 16)])
        f['link'] = h5py.ExternalLink(str(tmp_path/'other.h5'), '/x')
    with h5py.File(tmp_path/'other.h5', 'w') as g: g.create_dataset('x', data=np.ones(3, np.float32))
    with W.open_h5(p) as f:
        assert np.array_equal(W.h5_array(f['plain'], p), np.arange(6, dtype=np.float32).reshape(2, 3))
        assert W.h5_array(f['packed'], p).shape == (256, 256)   # compressed 1000×: allowed
        with pytest.raises(W.UnsafeCheckpoint, match=r"dataset '/huge' declares shape \[1048576, 4096\] float32 \(16 GiB\) but the file stores 0 bytes"):
            W.h5_array(f['huge'], p)
        with pytest.raises(ModelError, match=re.escape("dataset '/text' holds |S3 values, not numbers")): W.h5_array(f['text'], p)
        for k in ('outside', 'link'):
            with pytest.raises(W.UnsafeCheckpoint, match=f"dataset '/{'x' if k == 'link' else k}' is stored in another file"): W.h5_array(f[k], p)
    (tmp_path/'junk.h5').write_bytes(b'junk')
    with pytest.raises(ModelError, match=r'junk\.h5: not an HDF5 file'): W.open_h5(tmp_path/'junk.h5')
