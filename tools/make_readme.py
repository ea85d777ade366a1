#!/usr/bin/env python
"""Write README.md from nbs/index.ipynb (what `nbdev-readme` does through Quarto, which is not installed here)."""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if not src or c['cell_type'] == 'raw': continue
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code' and not re.match(r'#\s*\|\s*(hide|include:\s*false)', src):
            parts.append('```python\n' + src + '\n```')
    return '\n\n'.join(parts) + '\n'

def main():
    text = render()
    dest = ROOT/'README.md'
    if '--check' in sys.argv:
        ok = dest.exists() and dest.read_text() == text
        print('README.md is up to date' if ok else 'README.md is out of date: run tools/make_readme.py')
        return 0 if ok else 1
    dest.write_text(text); print(f'wrote {dest}')
    return 0

if __name__ == '__main__': sys.exit(main())
