"""The docs site builds from the notebooks, has a page per notebook, shows API tables, and its internal links work."""
import re, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse, unquote
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from build_docs import page_name  # noqa: E402

def notebooks():
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT/'nbs').parts))

def sidebar_entries(node):
    if isinstance(node, str): yield node
    elif isinstance(node, list):
        for n in node: yield from sidebar_entries(n)
    elif isinstance(node, dict):
        if 'href' in node: yield node['href']
        yield from sidebar_entries(node.get('contents', []))

def test_sidebar_lists_every_notebook_and_nothing_else():
    side = yaml.safe_load((ROOT/'nbs'/'sidebar.yml').read_text())
    entries = list(sidebar_entries(side['website']['sidebar']['contents']))
    assert not [e for e in entries if e.endswith(('.yml', '.yaml'))]
    nbs = {p.relative_to(ROOT/'nbs').as_posix() for p in notebooks()}
    assert set(entries) == nbs, f'missing from sidebar: {nbs - set(entries)}; not notebooks: {set(entries) - nbs}'

class Links(HTMLParser):
    def __init__(self): super().__init__(); self.links = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'a' and a.get('href'): self.links.append(a['href'])

@pytest.fixture(scope='module')
def site():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py')], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return ROOT/'_docs'

def test_every_notebook_has_a_page(site):
    for nb in notebooks():
        rel = nb.relative_to(ROOT/'nbs').parent
        assert (site/rel/(page_name(nb)+'.html')).exists(), nb

def test_api_docs_are_rendered(site):
    "show_doc output (nbdev 3 renders docments inside the signature, one parameter a line) reaches the pages."
    html = (site/'weights.html').read_text()
    assert re.search(r'<h3[^>]*>\s*fetch', html)                      # the API entry's heading
    assert 'allow_download' in html and 'download when' in html        # a parameter with its docment
    assert 'Return <code>dest</code> after verifying' in html or 'after verifying its checksum' in html

def test_internal_links_resolve(site):
    bad = []
    for page in site.rglob('*.html'):
        p = Links(); p.feed(page.read_text())
        for href in p.links:
            u = urlparse(href)
            if u.scheme or u.netloc or not u.path: continue
            target = (page.parent/unquote(u.path)).resolve()
            if not target.exists(): bad.append(f'{page.relative_to(site)} -> {href}')
    assert not bad, bad[:20]

def test_notebook_cells_are_docs_safe():
    "nbdev's docs build executes import cells alone: imports must not share a cell with other code."
    from check_nbs import problems
    bad = [(nb.relative_to(ROOT).as_posix(), i, why) for nb in notebooks() for i, why, _ in problems(nb)]
    assert not bad, bad

def test_saved_outputs_are_clean():
    "No stderr streams (warnings, progress bars) and no absolute temporary/home/venv paths in saved outputs."
    from check_nbs import output_problems
    bad = [f'{nb.relative_to(ROOT).as_posix()} cell {i}: {why}: {ex[:100]}' for nb in notebooks() for i, why, ex in output_problems(nb)]
    assert not bad, f'{len(bad)} problem output(s):\n' + '\n'.join(bad)

def test_output_check_catches_what_it_should(tmp_path):
    import nbformat as nbf
    from check_nbs import output_problems
    nb = nbf.v4.new_notebook()
    c = nbf.v4.new_code_cell('x')
    c.outputs = [nbf.v4.new_output('stream', name='stderr', text='/tmp/ipykernel_7/1.py:5: UserWarning: careful\n'),
                 nbf.v4.new_output('execute_result', data={'text/plain': "PosixPath('/home/alice/data/x.tif')"}),
                 nbf.v4.new_output('stream', name='stdout', text='fine: nbs/papers/x.ipynb, 3 files, https://example.org/tmp/a\n')]
    nb.cells = [c]; nbf.write(nb, tmp_path/'x.ipynb')
    got = output_problems(tmp_path/'x.ipynb')
    assert [w for _, w, _ in got] == ['stderr', 'absolute path', 'absolute path'], got

def test_api_entries_render_cleanly(site):
    "show_doc through build_docs' renderer: signatures fit the page, no NoneType=None, no sentinel reprs, no torch docstrings."
    import html as H
    from build_docs import WIDTH
    long, nonetype, sentinel, torchdoc = [], 0, 0, []
    for page in site.rglob('*.html'):
        s = page.read_text()
        for m in re.finditer(r'<h3[^>]*>((?:(?!</h3>).)*)</h3>\s*<div class="code-copy-outer-scaffold"><div class="sourceCode"[^>]*><pre[^>]*><code[^>]*>(.*?)</code>', s, re.S):
            code = H.unescape(re.sub(r'<[^>]+>', '', m.group(2)))
            if not re.match(r'(async def|def|class) ', code): continue
            long += [f'{page.name}: {l}' for l in code.splitlines() if len(l) > WIDTH]
            nonetype += code.count('NoneType=None'); sentinel += len(re.findall(r'object at 0x', code))
        if 'Define the computation performed at every call' in s: torchdoc.append(page.name)
    assert nonetype == 0 and sentinel == 0 and not torchdoc, (nonetype, sentinel, torchdoc)
    assert len(long) <= 5, long                      # a type annotation alone can be wider than the page
    geo = (site/'geo.html').read_text()
    assert re.search(r'<h3[^>]*>RasterWriter\.__enter__</h3>', geo)
    assert re.search(r'<span class="kw">class</span> RasterMeta\(', geo)

def test_site_is_offline_complete(site):
    pages = list(site.rglob('*.html'))
    assert (site/'site_libs'/'katex'/'katex.min.js').exists() and list((site/'site_libs'/'katex'/'fonts').glob('*.woff2'))
    assert not [p.name for p in pages if 'cdn.jsdelivr.net' in p.read_text()]
    assert not [p.name for p in pages if re.search(r'<a\b[^>]*href="https://rsnb\.github\.io/', p.read_text())]
