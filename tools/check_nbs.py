#!/usr/bin/env python
"""List notebook cells that break the docs build: imports mixed with other code in non-exported cells (nbdev executes
import cells when rendering docs, without the rest of the notebook) and show_doc calls sharing a cell. Exit 1 if any."""
import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def problems(path):
    nb = json.loads(Path(path).read_text()); out = []
    head = ''.join(''.join(c['source']) for c in nb['cells'][:2] if c['cell_type'] == 'raw')
    if re.search(r'skip_showdoc:\s*true', head): return out  # the docs build executes nothing in it
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        if re.search(r'^#\s*\|\s*export', src, re.M): continue  # exported cells run in the docs build anyway
        code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('#', '%', '!')))
        try: tree = ast.parse(code)
        except SyntaxError: continue
        if 'nbdev_export()' in src or re.search(r'^#\s*\|\s*eval:\s*false', src, re.M): continue  # not run by the docs
        # nbdev runs any cell with an import *anywhere* in it; only imports, defs and classes are safe to run alone
        has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
        safe = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if has_import and not all(isinstance(n, safe) for n in tree.body):
            out.append((i, 'imports mixed with other code', src))
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
