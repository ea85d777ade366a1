#!/usr/bin/env python
"""Build the docs site into _docs/ without Quarto.

nbdev processes the notebooks exactly as for a Quarto build (`nbdev-proc-nbs`: show_doc tables, directives, hidden
cells) into _proc/; smalldocs then renders _proc/ with nbs/_quarto.yml. smalldocs ignores Quarto's `output-file`, so
each processed notebook is first renamed to its nbdev page name (00_core.ipynb -> core.html), which is what nbdev's
cross-reference links point to, and sidebar.yml is rewritten to match. Where Quarto is installed, `nbdev-docs`
builds the same site from the same config.
"""
import json, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def page_name(nb: Path) -> str:
    "nbdev's page name for a processed notebook: its frontmatter output-file, else the name without number prefix."
    nbj = json.loads(nb.read_text())
    for c in nbj['cells'][:2]:
        m = re.search(r'^output-file:\s*(\S+)', ''.join(c['source']), re.M)
        if m: return Path(m.group(1)).stem
    return re.sub(r'^\d+[a-z]?_', '', nb.stem)

def main(only=None):
    for d in ('_proc', '_docs'): shutil.rmtree(ROOT/d, ignore_errors=True)
    r = subprocess.run([str(BIN/'nbdev-proc-nbs'), *(['--file-re', only] if only else [])], cwd=ROOT, capture_output=True, text=True)
    if r.returncode: sys.exit(f'nbdev-proc-nbs failed:\n{r.stderr[-4000:]}')
    proc = ROOT/'_proc'
    sidebar = (proc/'sidebar.yml').read_text()
    for nb in sorted(proc.rglob('*.ipynb')):
        new = nb.with_name(page_name(nb) + '.ipynb')
        if new != nb:
            nb.rename(new)
            old_rel, new_rel = nb.relative_to(proc).as_posix(), new.relative_to(proc).as_posix()
            sidebar = re.sub(rf'(?m)^(\s*-\s*){re.escape(old_rel)}\s*$', rf'\g<1>{new_rel}', sidebar)
    (proc/'sidebar.yml').write_text(sidebar)
    r = subprocess.run([str(BIN/'smalldocs'), 'render', '-q', str(proc)], cwd=ROOT, capture_output=True, text=True)
    if r.returncode: sys.exit(f'smalldocs failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}')
    shutil.move(str(proc/'_docs'), str(ROOT/'_docs'))
    n = len(list((ROOT/'_docs').rglob('*.html')))
    print(f'docs: {n} pages in {ROOT/"_docs"} (open _docs/index.html)')

if __name__ == '__main__': main(sys.argv[1] if len(sys.argv) > 1 else None)
