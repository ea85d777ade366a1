#!/usr/bin/env python
"""List notebook cells that break the docs build: imports mixed with other code in non-exported cells (nbdev executes
import cells when rendering docs, without the rest of the notebook) and show_doc calls sharing a cell. Exit 1 if any."""
import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def problems(path):
    nb = json.loads(Path(path).read_text()); out = []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        if re.search(r'^#\s*\|\s*export', src, re.M): continue  # exported cells run in the docs build anyway
        code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('#', '%', '!')))
        try: tree = ast.parse(code)
        except SyntaxError: continue
        body = [n for n in tree.body if ast.unparse(n) != 'nbdev.nbdev_export()']  # the standard last cell is fine
        kinds = [isinstance(n, (ast.Import, ast.ImportFrom)) for n in body]
        if any(kinds) and not all(kinds): out.append((i, 'imports mixed with other code', src))
        if 'show_doc(' in code and len(tree.body) > 1: out.append((i, 'show_doc shares its cell', src))
    return out

def main(paths):
    paths = paths or sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT/'nbs').parts))
    n = 0
    for p in paths:
        for i, why, src in problems(p):
            n += 1; print(f'{p} cell {i}: {why}\n    ' + src.replace('\n', '\n    ')[:400])
    print(f'{n} problem cell(s)')
    return 1 if n else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
