#!/usr/bin/env python
"""List notebook cells that break the docs build or leave a mess in the saved outputs. Exit 1 if any.

- imports mixed with other code in non-exported cells (nbdev executes import cells when rendering docs, without the
  rest of the notebook) and show_doc calls sharing a cell;
- saved outputs with a stderr stream (warnings, progress bars, logging: the reader sees them on the docs page) or an
  absolute path of a temporary, home or virtual-environment folder (or of this checkout): where the notebook was
  executed is no business of the page.

`python tools/check_nbs.py [--counts] [NOTEBOOK ...]`: `--counts` prints per-notebook counts of output problems."""
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

# absolute paths a saved output must not show: temporary folders, home folders, virtual environments / site-packages
ABS_PATH = re.compile(r"(?<![\w.~])(?:/tmp/|/var/tmp/|/var/folders/|/private/var/|/dev/shm/|/home/[^/\s'\"]+/|/root/|/Users/[^/\s'\"]+/"
                      r"|[A-Za-z]:\\Users\\|/\S*?/(?:\.?venv|site-packages|dist-packages)/)")

def _out_text(o):
    if o.get('output_type') == 'stream': return ''.join(o.get('text', ''))
    if o.get('output_type') == 'error': return '\n'.join(o.get('traceback', []))
    data = o.get('data', {})
    return '\n'.join(''.join(v) if isinstance(v, list) else str(v) for k, v in data.items() if k.startswith('text/') or k.endswith('json'))

def output_problems(path, root=ROOT):
    "(cell index, kind, excerpt) for each saved output that is a stderr stream or shows an absolute machine path."
    nb = json.loads(Path(path).read_text()); out = []
    roots = [str(Path(root).resolve()) + '/'] + ([str(Path(root)) + '/'] if str(Path(root)) != str(Path(root).resolve()) else [])
    for i, c in enumerate(nb['cells']):
        for o in c.get('outputs', []):
            text = _out_text(o)
            if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
                out.append((i, 'stderr', text.strip().splitlines()[0][:160] if text.strip() else '(empty)'))
            m = ABS_PATH.search(text) or next((re.search(re.escape(r) + r'\S*', text) for r in roots if r in text), None)
            if m:
                line = next(l for l in text.splitlines() if m.group(0) in l)
                out.append((i, 'absolute path', line.strip()[:160]))
    return out

def notebook_paths():
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT/'nbs').parts))

def main(args):
    counts = '--counts' in args
    paths = [Path(a) for a in args if a != '--counts'] or notebook_paths()
    n = m = 0
    for p in paths:
        rel = p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p
        for i, why, src in problems(p):
            n += 1; print(f'{rel} cell {i}: {why}\n    ' + src.replace('\n', '\n    ')[:400])
        outs = output_problems(p)
        m += len(outs)
        if counts and outs:
            k = {w: sum(1 for _, x, _ in outs if x == w) for w in ('stderr', 'absolute path')}
            print(f"{rel}: {k['stderr']} stderr output(s), {k['absolute path']} absolute path(s)")
        for i, why, ex in ([] if counts else outs): print(f'{rel} cell {i}: {why} in a saved output: {ex}')
    print(f'{n} problem cell(s), {m} problem output(s)')
    return 1 if n or m else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
