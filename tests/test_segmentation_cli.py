"rsnb-segment end to end: a saved model applied to a georeferenced GeoTIFF in a subprocess."
import subprocess, sys
import numpy as np, rasterio, torch
from rasterio.transform import from_origin
from rsnb.weights import save_model
from rsnb.segmentation.models import seg_model

def test_cli_writes_class_map(tmp_path):
    torch.manual_seed(0)
    net = seg_model('deeplabv3p', 'resnet18', 4, 4, output_stride=16)
    pal = [[10, 20, 30], [40, 50, 60], [70, 80, 90], [100, 110, 120]]
    save_model(net, tmp_path/'m', dict(arch='deeplabv3p', backbone='resnet18', impl='paddleseg', n_classes=4, in_chans=4, output_stride=16,
                                       palette=pal, norm=dict(scale=255., mean=.5, std=.5)))
    prof = dict(driver='GTiff', width=150, height=100, count=4, dtype='uint8', crs='EPSG:32617', transform=from_origin(1000, 2000, 2, 2))
    with rasterio.open(tmp_path/'in.tif', 'w', **prof) as ds: ds.write(np.random.default_rng(0).integers(0, 255, (4, 100, 150), dtype=np.uint8))
    code = ("from rsnb.segmentation.cli import main; import sys; "
            f"sys.exit(main([{str(tmp_path/'m.pth')!r}, {str(tmp_path/'in.tif')!r}, {str(tmp_path/'out.tif')!r}, '--tile', '64', '--overlap', '16', '--quiet']))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={'OMP_NUM_THREADS': '1', 'PATH': ''})
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path/'out.tif') as ds:
        assert (ds.crs.to_epsg(), ds.transform, ds.count, ds.dtypes[0]) == (32617, prof['transform'], 1, 'uint8')
        assert ds.read(1).max() < 4
        assert [ds.colormap(1)[i][:3] for i in range(4)] == [tuple(c) for c in pal]

def test_cli_error_names_file(tmp_path):
    prof = dict(driver='GTiff', width=8, height=8, count=3, dtype='uint8', crs='EPSG:32617', transform=from_origin(0, 8, 1, 1))
    with rasterio.open(tmp_path/'a.tif', 'w', **prof) as ds: ds.write(np.zeros((3, 8, 8), np.uint8))
    code = f"from rsnb.segmentation.cli import main; import sys; sys.exit(main([{str(tmp_path/'nope.pth')!r}, {str(tmp_path/'a.tif')!r}, {str(tmp_path/'b.tif')!r}]))"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 2 and 'nope.pth: not found' in r.stderr and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path/'b.tif').exists()
