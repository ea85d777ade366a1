"""The docs site builds from the notebooks, has a page per notebook, shows API tables, and its internal links work."""
import re, sys
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

BUILD = {}

@pytest.fixture(scope='module')
def site():
    from conftest import docs_build
    site, BUILD['log'] = docs_build()    # one build shared with test_docs_browser (a file lock)
    return site

def test_build_has_no_warnings(site):
    "Neither nbdev nor smalldocs warns (the keys smalldocs ignores are dropped from the processed copy); the one allowed:"
    "KaTeX from the CDN where npm cannot fetch it (a machine without npm or network)."
    lines = [l for l in BUILD['log'].splitlines() if re.search(r'warn|error|ignored|\bnot read|broken', l, re.I)]
    assert [l for l in lines if 'katex' not in l.lower()] == [], lines

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

# --- readability (issue 24): links a reader can follow, figures drawn sharp enough --------------------------------

def test_no_links_a_reader_cannot_follow(site):
    "No page sends a reader to the development checkout's shared/ folder (design notes, the data README), and no link"
    "leads into the repository pyproject.toml names, which is not published (build_docs drops them unless --repo-links)."
    from build_docs import repository
    repo = repository()
    assert repo, 'pyproject.toml names no repository'
    bad = []
    for page in sorted(site.rglob('*.html')):
        html = page.read_text()
        bad += [f'{page.name}: …{html[max(0, m.start() - 60):m.end()]}' for m in re.finditer(r'shared/(?:design|data/README)', html)]
        p = Links(); p.feed(html)
        bad += [f'{page.name}: link {h}' for h in p.links if h.startswith(repo)]
    assert bad == [], '\n'.join(bad[:20])

def test_one_repository_named():
    "pyproject's [project.urls] Repository, nbdev's git_url and the site's repo-url name the same repository."
    import tomllib
    from build_docs import repository
    nbdev_yml = yaml.safe_load((ROOT/'nbs'/'nbdev.yml').read_text())
    git_url = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['nbdev']['git_url']
    assert {repository(), git_url.rstrip('/'), nbdev_yml['website']['repo-url'].rstrip('/')} == {repository()}

def test_drop_repo_links():
    from build_docs import drop_repo_links
    repo = 'https://github.com/o/r'
    html = (f'<p><a href="{repo}/blob/main/r/x.py#L3" target="_blank" style="float:right">source</a></p>\n<h3>f</h3>'
            f'<div class="action-links"><a href="{repo}/issues/new" class="toc-action"><i class="bi"></i> Report an issue</a></div>'
            f'<p>see <a href="{repo}/tree/main/benchmarks">the benchmarks</a> and <a href="https://github.com/o/other">other</a></p>')
    out, n = drop_repo_links(html, repo)
    assert n == 3 and repo not in out
    assert out == ('<h3>f</h3><div class="action-links"></div>'
                   '<p>see the benchmarks and <a href="https://github.com/o/other">other</a></p>')

def test_tidy_tables():
    "Each table wrapped once in its scrolling box; cells holding a number (also in <strong>) marked num, others not."
    from build_docs import tidy_tables
    html = ('<table class="dataframe"><tr><th>0</th><td>jpeg</td><td>20.0</td><td><strong>99.52</strong></td>'
            '<td>-1,234.5</td><td>65.46 %</td><td>97.9–99.8</td><td style="text-align: left">3</td></tr></table>')
    out, n = tidy_tables(html)
    assert n == 1 and out.startswith('<div class="rsnb-table-scroll"><table') and out.endswith('</table></div>')
    assert re.findall(r'<t[dh]( class="num")?[^>]*>(.*?)</t[dh]>', out) == [
        (' class="num"', '0'), ('', 'jpeg'), (' class="num"', '20.0'), (' class="num"', '<strong>99.52</strong>'),
        (' class="num"', '-1,234.5'), (' class="num"', '65.46 %'), ('', '97.9–99.8'), ('', '3')]
    assert tidy_tables(out) == (out, 0)

# Notebooks other work was editing when figures went to 100 dpi (their plotting cells still say 60-72): remove each
# from this set once its figures are raised and re-run. tests/test_docs_browser.py has the matching page set.
DPI_PENDING = {'04_tiles.ipynb', '34_change.cli.ipynb', '56_inpainting.cli.ipynb'}

def test_figures_are_drawn_at_100_dpi_or_more():
    "Every dpi a notebook's plotting code sets (dpi=, dpi:int=, set_dpi(), rcParams['figure.dpi']) is at least 100."
    import json
    low, n = [], 0
    pat = re.compile(r"""\bdpi\s*(?::\s*int\s*)?=\s*(\d+)|set_dpi\(\s*(\d+)|\[['"](?:figure|savefig)\.dpi['"]\]\s*=\s*(\d+)""")
    for nb in notebooks():
        if nb.name in DPI_PENDING: continue
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            if c['cell_type'] != 'code': continue
            for m in pat.finditer(''.join(c['source'])):
                n += 1
                if int(next(g for g in m.groups() if g)) < 100: low.append(f'{nb.name} cell {i}: {m.group(0)}')
    assert n > 10, n
    assert low == [], low
