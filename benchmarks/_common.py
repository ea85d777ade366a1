"Shared helpers for the rsnb benchmarks (not part of the library)."
import json, os, platform, sys, time
from pathlib import Path
os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('MKL_NUM_THREADS', '1')
import torch

RESULTS = Path(__file__).parent/'results'

def small_cnn(c_in=3, k=4, width=32):
    "The 'small CNN' of the benchmarks: 3×3 conv-ReLU ×3 and a 1×1 head (≈19 k parameters at width 32)."
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, k, 1)).eval()

def scene_path():
    from rsnb.core import data_path
    return data_path('scenes', 'LC08_L1TP_224077_20200518_B4B3B2.tif')

def env_info():
    return dict(python=sys.version.split()[0], torch=torch.__version__, threads=torch.get_num_threads(),
                machine=platform.machine(), cpus=os.cpu_count(), device='cpu')

def save(name, res):
    from rsnb.core import save_json
    RESULTS.mkdir(parents=True, exist_ok=True)
    res = dict(benchmark=name, when=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), env=env_info(), **res)
    save_json(res, RESULTS/f'{name}.json')
    print(json.dumps(res, indent=2))
    return res

def jsonl_logger(path):
    "A function appending one JSON line per call to `path` (flushed, so a crashed run keeps its log)."
    f = open(path, 'a')
    def log(d): f.write(json.dumps(d) + '\n'); f.flush()
    return log
