"""`rsnb-classify scene_lite0_aid30 LIST --table out.csv` on all 480 AID images the shipped classifier's card holds back
(its own split, seed 0): overall accuracy of the table's labels (must equal the card's `held_back_oa_shipped_weights`,
since the table resizes and normalises as the validation did) and the throughput of the command.

Usage: .venv/bin/python benchmarks/classify_table_aid.py [--threads 1]
Writes benchmarks/results/classify_table_aid.json.
"""
import argparse, csv, contextlib, io, json, tempfile, time
from pathlib import Path
import torch
from _common import save
from train_shipped_scene import split
from rsnb.core import data_path
from rsnb.classification.learner import _image_files
from rsnb.classification.cli import main as classify

def main(argv=None):
    p = argparse.ArgumentParser(); p.add_argument('--threads', type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    files = _image_files(data_path('classification', 'aid150')); classes = sorted({f.parent.name for f in files})
    _, ho, lab = split(files, classes, seed=0)
    card = json.loads((Path(__file__).parents[1]/'rsnb'/'weights'/'scene_lite0_aid30.json').read_text())
    with tempfile.TemporaryDirectory() as d:
        lst = Path(d)/'held_out.txt'; lst.write_text('\n'.join(str(files[i]) for i in ho) + '\n')
        t = time.time()
        with contextlib.redirect_stdout(io.StringIO()) as o: rc = classify(['scene_lite0_aid30', str(lst), '--table', str(Path(d)/'t.csv'), '-q', '--device', 'cpu'])
        secs = time.time() - t
        assert rc == 0, o.getvalue()
        rows = list(csv.DictReader(open(Path(d)/'t.csv', newline='')))
    ok = [r['class'] == Path(r['file']).parent.name for r in rows]
    res = dict(images=len(rows), oa=sum(ok)/len(ok), card_oa_shipped_weights=card['metrics']['held_back_oa_shipped_weights'],
               seconds=round(secs, 1), images_per_s=round(len(rows)/secs, 1), threads=a.threads)
    save('classify_table_aid', res)

if __name__ == '__main__': main()
