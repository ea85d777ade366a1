#!/usr/bin/env python
"""Build the docs site into _docs/ without Quarto: `python tools/build_docs.py [FILE_RE] [--serve [PORT]] [--absolute-links] [--repo-links]`.

nbdev processes the notebooks as for a Quarto build (what `nbdev-proc-nbs` does: show_doc tables, directives, hidden
cells) into _proc/, but without its Quarto install attempt (it runs `sudo dpkg -i` when Quarto is absent); smalldocs
then renders _proc/ with nbs/_quarto.yml. smalldocs ignores Quarto's `output-file`, so each processed notebook is
first renamed to its nbdev page name (00_core.ipynb -> core.html), which is what nbdev's cross-reference links point
to, and sidebar.yml is rewritten to match. Where Quarto is installed, `nbdev-docs` builds the same site from the same
config.

API entries are rendered by nbdev's show_doc with a few fixes (`patch_showdoc`): signatures wrapped to the page width
(long docments continue on `#` lines), no `NoneType` annotation on parameters that merely default to None, sentinels
by name instead of `<object object at 0x...>`, no docstring inherited from outside rsnb (an nn.Module `forward`
without its own docstring would show torch's), dunder names escaped in headings (`__enter__`, not bold "enter"),
classes (dataclasses too) headed `class`, not `def`.

The built site is complete offline: KaTeX is bundled into `site_libs/katex` (from the npm package, cached in
`~/.cache/rsnb-docs`; where npm cannot get it the pages keep the CDN and the build says so) and the API cross-references
(nbdev writes them as absolute links to the published site) point at the local pages, unless `--absolute-links`.
Search reads `search.json` with `fetch`, which browsers refuse for `file://` pages: `--serve` serves the site on
127.0.0.1 after building it.

Links into the source repository (show_doc's `source` links, the 'Report an issue' action) are removed unless
`--repo-links`: the repository that pyproject.toml names (`[project.urls] Repository`, = nbdev's `git_url`) is not
published yet, and a reader should not meet links that lead nowhere. With `--repo-links` they point at that repository.

Tables: every table is wrapped in a box that scrolls sideways (a wide DataFrame scrolls inside its own box instead of
running past the column) and each cell holding a number is marked `num` (right-aligned, tabular figures, by
nbs/styles.css, which also pads pandas' unstyled cells).

Warnings of both steps are printed. The keys smalldocs would read but ignore are dropped from the processed copy
(`quarto_only`): `output-file` (applied by the renaming), and the Quarto-only `keep-md` (Quarto's intermediate
Markdown), `commonmark` (a second output format) and `format-links` (links to it); nbs/ keeps them for `nbdev-docs`.
"""
import json, os, re, shutil, subprocess, sys, tarfile, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KATEX_VERSION = '0.16.11'    # the version smalldocs links from the CDN
KATEX_CDN = f'https://cdn.jsdelivr.net/npm/katex@{KATEX_VERSION}/dist'
SITE = 'https://rsnb.github.io/rsnb/'
WIDTH = 88                   # characters of a signature line that fit the page's code blocks

def page_name(nb: Path) -> str:
    "nbdev's page name for a processed notebook: its frontmatter output-file, else the name without number prefix."
    nbj = json.loads(nb.read_text())
    for c in nbj['cells'][:2]:
        m = re.search(r'^output-file:\s*(\S+)', ''.join(c['source']), re.M)
        if m: return Path(m.group(1)).stem
    return re.sub(r'^\d+[a-z]?_', '', nb.stem)

# --- show_doc rendering ---------------------------------------------------------------------------------------------

def _sentinel_name(o, obj):
    "The name a module-level sentinel `o` has in the module of `obj` (or of any rsnb module), else None."
    import inspect
    mods = [inspect.getmodule(obj)] + [m for n, m in list(sys.modules.items()) if n.startswith('rsnb')]
    for m in mods:
        for k, v in (vars(m).items() if m else ()):
            if v is o and not k.startswith('__'): return k
    return None

def patch_showdoc():
    "Patch fastcore's docments text and nbdev's markdown renderer as described in the module docstring."
    import inspect, textwrap
    from inspect import Parameter
    import fastcore.docments as D
    import nbdev.showdoc as S
    empty = inspect.Parameter.empty

    def _fmt_default(o, obj=None):
        if o is empty: return ''
        if hasattr(o, '__name__'): return o.__name__
        r = repr(o)
        if re.fullmatch(r'<.* at 0x[0-9a-f]+>', r):
            return _sentinel_name(o, obj) or f'<{type(o).__name__}>'
        if len(r) > 40:   # a long default (a spec dict, a tuple of metric names): its module-level name, or its start
            mod = sys.modules.get(getattr(getattr(obj, '__func__', obj), '__module__', None) or '')
            named = [k for k, v in vars(mod).items() if v is o and not k.startswith('_')] if mod else []
            return named[0] if named else r[:36] + '…'
        return r
    D._fmt_default = _fmt_default

    def _fmt_param(self, nm, p):
        anno, default, kind = p.get('anno', empty), p.get('default', empty), p.get('kind')
        pre = '*' if kind == Parameter.VAR_POSITIONAL else '**' if kind == Parameter.VAR_KEYWORD else ''
        if default is None and anno is type(None): anno = empty   # docments' inferred type of `x=None`
        anno = f':{D._type_str(anno)}' if anno != empty else ''
        default = f'={_fmt_default(default, self.obj)}' if default != empty else ''
        return pre + nm + anno + default
    D.DocmentText._fmt_param = _fmt_param

    def _fmt_sig(name, params, ret_str, maxline, prefix='def'):
        "nbdev's layout, with docment comments wrapped so that no line passes `maxline`."
        lines, curr = [], []
        for fmt, doc in params:
            # 4 spaces of indent, ', ' between parameters, a trailing comma, and the first words of a docment
            if curr and 4 + len(', '.join(curr + [fmt])) + 1 + (min(len(doc.splitlines()[0]), 24) + 3 if doc else 0) > maxline:
                lines.append(', '.join(curr) + ','); curr = []
            curr.append(fmt)
            if doc:
                code = ', '.join(curr) + ','
                room = max(24, maxline - 4 - len(code) - 3)
                parts = [w for para in doc.splitlines() for w in (textwrap.wrap(para, room) or [''])]
                if len(code) + 3 + len(parts[0]) > maxline - 4 or len(parts) > 3:   # the comment on lines of its own
                    lines.append(code)
                    lines += ['# ' + w for para in doc.splitlines() for w in (textwrap.wrap(para, maxline - 6) or [''])]
                else:
                    lines.append(f'{code} # {parts[0]}')
                    lines += [' ' * len(code) + ' # ' + w for w in parts[1:]]
                curr = []
        if curr: lines.append(', '.join(curr))
        pstr = '\n    '.join(lines)
        if not pstr: return f"{prefix} {name}({ret_str}"
        return f"{prefix} {name}(\n    {pstr}\n{ret_str}"
    D._fmt_sig = _fmt_sig

    orig_str = D.DocmentText.__str__
    def __str__(self):
        s = orig_str(self)
        if inspect.isclass(self.obj): s = re.sub(r'^(async )?def ', 'class ', s, count=1)
        return s
    D.DocmentText.__str__ = D.DocmentText.__repr__ = __str__

    orig_docstring = D._docstring
    def _docstring(sym, dm):
        f = getattr(sym, '__func__', sym)
        if inspect.isfunction(f) and not f.__doc__:
            return ''   # an inherited docstring (torch's nn.Module.forward with its RST) says nothing about this method
        return orig_docstring(sym, dm)
    D._docstring = _docstring

    class Renderer(S.BasicMarkdownRenderer):
        def __init__(self, sym, name=None, title_level=3, maxline=WIDTH):
            super().__init__(sym, name=name, title_level=title_level, maxline=maxline)
            if '__' in self.nm: self.nm = self.nm.replace('_', r'\_')
    S.BasicMarkdownRenderer = Renderer

# --- processing -----------------------------------------------------------------------------------------------------

def process(only=None):
    "nbdev-proc-nbs, without its Quarto check and install, in this process (so the show_doc patches apply)."
    import nbdev.doclinks, nbdev.serve, nbdev.serve_drv
    from fastcore.parallel import parallel
    from nbdev.config import get_config
    if not os.environ.get('RSNB_DOCS_PLAIN'): patch_showdoc()   # RSNB_DOCS_PLAIN=1: nbdev's own rendering, to compare
    cfg = get_config()
    os.chdir(cfg.config_path)
    nbdev.doclinks._build_modidx()
    path = cfg.nbs_path
    files = nbdev.serve.nbglob(path, func=Path, file_glob='', file_re='')
    if only: files = files.filter(nbdev.serve._keep_file, file_re=only)
    for extra in ('_quarto.yml', '_brand.yml'):
        if (path/extra).exists(): files.append(path/extra)
    cache = cfg.config_path/'_proc'
    cache.mkdir(parents=True, exist_ok=True)
    files = files.map(nbdev.serve._proc_file, cache=cache, path=path).filter()
    # fork: the workers inherit the patched renderer (nbdev spawns fresh interpreters outside notebooks)
    parallel(nbdev.serve_drv.main, files, n_workers=min(2, os.cpu_count() or 1), pause=0.01, method='fork')
    return cache

# --- offline assets and links ---------------------------------------------------------------------------------------

def katex_dist() -> Path | None:
    "KaTeX's dist folder from the npm package (cached); None, with a warning, where npm cannot get it."
    cache = Path(os.environ.get('RSNB_DOCS_CACHE', Path.home()/'.cache'/'rsnb-docs'))
    dist = cache/f'katex-{KATEX_VERSION}'/'package'/'dist'
    if (dist/'katex.min.js').exists(): return dist
    cache.mkdir(parents=True, exist_ok=True)
    npm = shutil.which('npm')
    if not npm:
        print('warning: npm not found: maths is rendered by KaTeX from the CDN (needs internet)', file=sys.stderr); return None
    r = subprocess.run([npm, 'pack', f'katex@{KATEX_VERSION}', '--silent'], cwd=cache, capture_output=True, text=True, timeout=300)
    tgz = cache/f'katex-{KATEX_VERSION}.tgz'
    if r.returncode or not tgz.exists():
        print(f'warning: npm pack katex@{KATEX_VERSION} failed ({r.stderr.strip()[-300:]}): maths needs the CDN', file=sys.stderr)
        return None
    with tarfile.open(tgz) as t: t.extractall(cache/f'katex-{KATEX_VERSION}', filter='data')
    return dist if (dist/'katex.min.js').exists() else None

def repository() -> str | None:
    "The repository named in pyproject.toml (`[project.urls] Repository`); nbdev's `git_url` must name the same one."
    import tomllib
    d = tomllib.loads((ROOT/'pyproject.toml').read_text())
    repo = d.get('project', {}).get('urls', {}).get('Repository')
    git_url = d.get('tool', {}).get('nbdev', {}).get('git_url')
    if repo and git_url and repo.rstrip('/') != git_url.rstrip('/'):
        print(f'warning: pyproject.toml names two repositories: [project.urls] Repository {repo}, [tool.nbdev] git_url {git_url}', file=sys.stderr)
    return repo.rstrip('/') if repo else None

def drop_repo_links(html: str, repo: str) -> tuple[str, int]:
    "Remove show_doc's `source` links and the 'Report an issue' action into `repo`; any other link into it keeps its text only."
    r = re.escape(repo)
    html, a = re.subn(rf'<p><a href="{r}/blob/[^"]*"[^>]*>source</a></p>\n?', '', html)
    html, b = re.subn(rf'<a href="{r}/issues/new"[^>]*>.*?</a>', '', html, flags=re.S)
    html, c = re.subn(rf'<a href="{r}(?:/[^"]*)?"[^>]*>(.*?)</a>', r'\1', html, flags=re.S)
    return html, a + b + c

def localise(site: Path, absolute_links=False, repo_links=False) -> dict:
    "Point KaTeX at the bundled copy and the API cross-references at the local pages; return counts."
    n = dict(katex_pages=0, local_refs=0, repo_links_removed=0)
    repo = repository()
    dist = katex_dist()
    if dist:
        dst = site/'site_libs'/'katex'
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for f in ('katex.min.css', 'katex.min.js'): shutil.copy2(dist/f, dst/f)
        (dst/'contrib').mkdir(); shutil.copy2(dist/'contrib'/'auto-render.min.js', dst/'contrib'/'auto-render.min.js')
        shutil.copytree(dist/'fonts', dst/'fonts')
        shutil.copy2(dist.parent/'LICENSE', dst/'LICENSE')
    for css in (site/'site_libs').rglob('*.css'):   # the Bootswatch themes import Google Fonts: the system fonts stand in offline
        t = css.read_text()
        t2 = re.sub(r'@import\s+url\(["\']?https?://fonts\.googleapis\.com[^)]*\)\s*;?', '', t)
        if t2 != t: css.write_text(t2); n['font_imports_removed'] = n.get('font_imports_removed', 0) + 1
    for page in site.rglob('*.html'):
        html = page.read_text()
        if 'rel="icon"' not in html:   # no request for a favicon the site does not have (a 404 in the console)
            html = html.replace('</head>', '<link rel="icon" href="data:,"></head>', 1); page.write_text(html)
        up = '../' * (len(page.relative_to(site).parts) - 1)
        new = html
        if dist and KATEX_CDN in new:
            new = new.replace(KATEX_CDN, f'{up}site_libs/katex'); n['katex_pages'] += 1
        if not absolute_links:
            def rel(m):
                target = m.group(2)
                path = target.split('#')[0]
                if path and not (site/path).exists(): return m.group(0)   # not a page of this build: keep the link
                n['local_refs'] += 1
                return f'{m.group(1)}"{up}{target}"'
            new = re.sub(rf'(<a\b[^>]*?\bhref=)"{re.escape(SITE)}([^"]*)"', rel, new)
        new, k = tidy_tables(new); n['tables'] = n.get('tables', 0) + k
        if repo and not repo_links: new, k = drop_repo_links(new, repo); n['repo_links_removed'] += k
        if new != html: page.write_text(new)
    return n

NUM = re.compile(r'\s*(?:[-+\u2212]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*%?|nan|NaN|inf|-inf|—|–)\s*')

def tidy_tables(html: str) -> tuple[str, int]:
    "Wrap each table in a box that scrolls sideways (div.rsnb-table-scroll) and mark cells holding a number `num` (right-aligned by styles.css)."
    def cell(m):
        tag, attrs, body = m.group(1), m.group(2) or '', m.group(3)
        if not NUM.fullmatch(re.sub(r'</?(?:strong|b|em|i|code|span)\b[^>]*>', '', body)) or 'text-align' in attrs: return m.group(0)
        if 'class="' in attrs: attrs = attrs.replace('class="', 'class="num ', 1)
        else: attrs += ' class="num"'
        return f'<{tag}{attrs}>{body}</{tag}>'
    n = 0
    def table(m):
        nonlocal n; n += 1
        t = re.sub(r'<(td|th)(\s[^>]*)?>(.*?)</\1>', cell, m.group(0), flags=re.S)
        return f'<div class="rsnb-table-scroll">{t}</div>'
    html = re.sub(r'(?<!<div class="rsnb-table-scroll">)<table\b.*?</table>', table, html, flags=re.S)
    return html, n

KNOWN = (r'output-file is not read by smalldocs', r'unknown key format-links', r'format commonmark is not built',
         r'format\.html\.keep-md is ignored')   # Quarto-only settings: handled (renaming) or kept for nbdev-docs

def _warnings(text):
    "smalldocs' warnings, each once: broken links with the number of pages they occur on, Quarto-only keys summed up."
    lines = [l for l in text.splitlines() if re.search(r'warn|error|ignored|not read', l, re.I)]
    known = [l for l in lines if any(re.search(k, l) for k in KNOWN)]
    out, links = [], {}
    for l in lines:
        if l in known: continue
        m = re.search(r'broken link (\S+)', l)
        if m: links[m.group(1)] = links.get(m.group(1), 0) + 1
        elif l not in out: out.append(l)
    out += [f'warning: broken link {k} (on {n} page(s))' for k, n in links.items()]
    if known: out.append(f'{len(known)} known warning(s) about Quarto-only settings (output-file: handled by renaming; format-links, '
                         'commonmark, keep-md: used by nbdev-docs only)')
    return out

def quarto_only(proc: Path):
    "Drop, from the processed copy only, what smalldocs would warn about and ignore: `output-file` (the renaming above"
    "has applied it) and the Quarto-only keys `keep-md`, `commonmark`, `format-links` (nbs/ keeps them for nbdev-docs)."
    for nb in proc.rglob('*.ipynb'):
        j = json.loads(nb.read_text())
        for c in j['cells'][:2]:
            src = c['source'] if isinstance(c['source'], list) else c['source'].splitlines(keepends=True)
            keep = [l for l in src if not re.match(r'output-file:', l)]
            if keep != src: c['source'] = keep; nb.write_text(json.dumps(j, indent=1))
    q = proc/'_quarto.yml'
    if q.exists(): q.write_text(re.sub(r'(?m)^(\s+keep-md:.*|  commonmark:.*)\n', '', q.read_text()))
    y = proc/'nbdev.yml'
    if y.exists(): y.write_text(re.sub(r'(?m)^format-links:\n(?:[ -].*\n?)*', '', y.read_text()))

def main(only=None, serve=None, absolute_links=False, repo_links=False):
    for d in ('_proc', '_docs'): shutil.rmtree(ROOT/d, ignore_errors=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try: proc = process(only)
        except Exception as e: sys.exit(f'processing the notebooks failed: {e}')
    for w in caught: print(f'warning (nbdev): {w.category.__name__}: {w.message}', file=sys.stderr)
    sidebar = (proc/'sidebar.yml').read_text()
    for nb in sorted(proc.rglob('*.ipynb')):
        new = nb.with_name(page_name(nb) + '.ipynb')
        if new != nb:
            nb.rename(new)
            old_rel, new_rel = nb.relative_to(proc).as_posix(), new.relative_to(proc).as_posix()
            sidebar = re.sub(rf'(?m)^(\s*-?\s*(?:href:\s*)?){re.escape(old_rel)}\s*$', rf'\g<1>{new_rel}', sidebar)
    (proc/'sidebar.yml').write_text(sidebar)
    quarto_only(proc)
    r = subprocess.run([str(BIN/'smalldocs'), 'render', '-q', str(proc)], cwd=ROOT, capture_output=True, text=True)
    for l in _warnings(r.stdout + '\n' + r.stderr): print(f'smalldocs: {l}', file=sys.stderr)
    if r.returncode: sys.exit(f'smalldocs failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}')
    shutil.move(str(proc/'_docs'), str(ROOT/'_docs'))
    site = ROOT/'_docs'
    n = localise(site, absolute_links, repo_links)
    pages = len(list(site.rglob('*.html')))
    print(f"docs: {pages} pages in _docs/ ({n['katex_pages']} with bundled KaTeX, {n['local_refs']} API cross-references made local, "
          f"{n['repo_links_removed']} links into the unpublished repository dropped: --repo-links keeps them); "
          f"search needs a server: python tools/build_docs.py --serve (file:// pages cannot read search.json)")
    if serve is not None: serve_site(site, serve)

def serve_site(site: Path, port=8000):
    "Serve the built site on 127.0.0.1 (search reads search.json, which file:// pages cannot)."
    import functools, http.server
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site)))
    print(f'serving {site} at http://127.0.0.1:{srv.server_address[1]}/ (Ctrl-C stops)', flush=True)
    try: srv.serve_forever()
    except KeyboardInterrupt: pass

if __name__ == '__main__':
    import argparse
    ap = argparse.ArgumentParser(description='Build the docs site into _docs/ (no Quarto needed).')
    ap.add_argument('only', nargs='?', help='only notebooks whose file name matches this regex')
    ap.add_argument('--serve', nargs='?', type=int, const=8000, metavar='PORT', help='then serve it on 127.0.0.1 (default port 8000)')
    ap.add_argument('--absolute-links', action='store_true', help="keep API cross-references pointing at the published site")
    ap.add_argument('--repo-links', action='store_true', help="keep the 'source' and 'Report an issue' links into the repository "
                    "named in pyproject.toml (build with this once that repository is published)")
    a = ap.parse_args()
    main(a.only, a.serve, a.absolute_links, a.repo_links)
