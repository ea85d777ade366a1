"""The built site as a reader sees it: a handful of pages opened in headless Chromium (Debian's `chromium` package),
served on 127.0.0.1 as `tools/build_docs.py --serve` does, driven through the DevTools protocol. Asserts no console
errors and no failed requests (nothing from a CDN: the machine may be offline), maths rendered by the bundled KaTeX,
a search that finds pages, and local links that resolve. Skipped, saying why, where Chromium or websocket-client is
absent. Cheap within the suite: it reuses _docs/ when it is newer than every notebook (tests/test_docs.py builds it
first), so the cost is one Chromium start and a few page loads (about half a minute)."""
import functools, http.server, json, os, shutil, subprocess, sys, tempfile, threading, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROME = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome', 'chrome') if shutil.which(n)), None)
try: import websocket  # websocket-client
except ImportError: websocket = None

pytestmark = [pytest.mark.skipif(CHROME is None, reason='Chromium not installed (Debian: apt-get install chromium): browser checks of the docs skipped'),
              pytest.mark.skipif(websocket is None, reason='websocket-client not installed: browser checks of the docs skipped')]

PAGES = ['index.html', 'core.html', 'geo.html', 'repro.html', 'papers/bahri2019.html', 'papers/demo.html']

@pytest.fixture(scope='module')
def server():
    from conftest import docs_build
    site, _ = docs_build()               # one build shared with test_docs (a file lock)
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield site, f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()

class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

class Page:
    "One Chromium tab through the DevTools protocol: navigate, evaluate, and the errors it logged."
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True); self.n = 0; self.events = []
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable', 'Network.enable'): self.call(m)
    def call(self, method, **params):
        self.n += 1; i = self.n
        self.ws.send(json.dumps(dict(id=i, method=method, params=params)))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == i:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})
            self.events.append(msg)
    def wait(self, event, timeout=30):
        t = time.time()
        while time.time() - t < timeout:
            if any(e.get('method') == event for e in self.events): return True
            self.ws.settimeout(max(0.1, timeout - (time.time() - t)))
            try: self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException: break
        return False
    def goto(self, url):
        self.events = []
        self.call('Page.navigate', url=url)
        assert self.wait('Page.loadEventFired'), f'{url}: did not load'
        time.sleep(0.3); self.eval('1')   # deferred scripts (KaTeX auto-render) and their console output
    def eval(self, js):
        r = self.call('Runtime.evaluate', expression=js, awaitPromise=True, returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{js}: {r["exceptionDetails"]}')
        return r['result'].get('value')
    def errors(self):
        out = []
        for e in self.events:
            m, p = e.get('method'), e.get('params', {})
            if m == 'Runtime.exceptionThrown': out.append(p['exceptionDetails'].get('exception', {}).get('description') or p['exceptionDetails'].get('text'))
            elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'): out.append(' '.join(str(a.get('value', a.get('description'))) for a in p['args']))
            elif m == 'Log.entryAdded' and p['entry']['level'] == 'error': out.append(f"{p['entry']['text']} {p['entry'].get('url', '')}")
            elif m == 'Network.loadingFailed' and not p.get('canceled'): out.append(f"request failed: {p.get('errorText')}")
        return out

@pytest.fixture(scope='module')
def browser(server):
    prof = tempfile.mkdtemp(prefix='rsnb-chromium-')
    flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', f'--user-data-dir={prof}',
             '--remote-debugging-port=0', '--remote-allow-origins=*', 'about:blank']
    proc = subprocess.Popen([CHROME, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(prof)/'DevToolsActivePort'
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip(): break
            time.sleep(0.1)
        else: pytest.fail('Chromium did not start (no DevToolsActivePort)')
        port = port_file.read_text().split()[0]
        for _ in range(100):
            tabs = [t for t in json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list')) if t['type'] == 'page']
            if tabs: break
            time.sleep(0.1)
        page = Page(tabs[0]['webSocketDebuggerUrl'])
        yield page
        page.ws.close()
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()
        shutil.rmtree(prof, ignore_errors=True)

@pytest.mark.parametrize('page', PAGES)
def test_page_loads_without_errors(server, browser, page):
    site, base = server
    browser.goto(base + page)
    assert browser.errors() == [], f'{page}: {browser.errors()}'
    assert browser.eval('document.querySelectorAll("#quarto-sidebar a, nav a").length') > 10
    bad = browser.eval("""Promise.all([...document.querySelectorAll('a[href]')].map(a => a.href)
        .filter(h => h.startsWith(location.origin)).map(h => h.split('#')[0]).filter((h, i, a) => a.indexOf(h) === i)
        .map(h => fetch(h, {method: 'HEAD'}).then(r => r.ok ? null : r.status + ' ' + h)))
        .then(r => r.filter(x => x))""")
    assert bad == [], f'{page}: broken local links {bad}'
    assert browser.eval('[...document.querySelectorAll("a[href]")].filter(a => a.href.includes("rsnb.github.io")).length') == 0

def test_maths_is_rendered_offline(server, browser):
    site, base = server
    pages = [p.relative_to(site).as_posix() for p in sorted(site.rglob('*.html')) if 'site_libs/katex' in p.read_text()]
    assert pages, 'no page with maths links the bundled KaTeX'
    assert not [p for p in site.rglob('*.html') if 'cdn.jsdelivr.net/npm/katex' in p.read_text()], 'a page still loads KaTeX from the CDN'
    for page in pages[:3]:
        browser.goto(base + page)
        assert browser.errors() == [], f'{page}: {browser.errors()}'
        assert browser.eval('document.querySelectorAll(".katex").length') > 0, f'{page}: no rendered maths'
        raw = browser.eval(r'[...document.querySelectorAll("p, li")].filter(e => /\\\(|\\\[/.test(e.textContent)).length')
        assert raw == 0, f'{page}: {raw} paragraphs with raw LaTeX'

def test_search_finds_pages(server, browser):
    site, base = server
    browser.goto(base + 'index.html')
    hits = browser.eval("""(async () => {
        const i = document.querySelector('.smalldocs-search input');
        i.value = 'atomic_write'; i.dispatchEvent(new Event('input'));
        for (let k = 0; k < 50; k++) { await new Promise(r => setTimeout(r, 100));
            const h = [...document.querySelectorAll('.search-result')].map(a => a.getAttribute('href'));
            if (h.length) return h; }
        return []; })()""")
    assert hits and any(h.split('#')[0].endswith('core.html') for h in hits), hits
    assert browser.errors() == [], browser.errors()

def test_results_table_is_a_table(server, browser):
    site, base = server
    browser.goto(base + 'repro.html')
    heads = browser.eval('[...document.querySelectorAll("table.rsnb-results thead th")].map(t => t.textContent)')
    assert heads[:7] == ['dataset', 'model', 'metric', 'paper', 'rsnb', 'difference', 'rsnb configuration'], heads

# --- readability: tables, figures, search contrast (issue 24) -------------------------------------------------------

def _viewport(browser, width=1280, height=900):
    "A desktop window (headless Chromium's default is 800 px wide, where the sidebar folds away)."
    browser.call('Emulation.setDeviceMetricsOverride', width=width, height=height, deviceScaleFactor=1, mobile=False)

def _pages_with(site, needle):
    return [p.relative_to(site).as_posix() for p in sorted(site.rglob('*.html')) if needle in p.read_text()]

NUMBER_JS = r'/^\s*[-+\u2212]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*%?\s*$/'

def test_tables_fit_the_column_with_padding_and_numbers_right(server, browser):
    "Every table on every page: its visible box (the table, or the box it scrolls in) within the content column, the page"
    "without a horizontal scroll bar, cells padded, and each cell that holds a number right-aligned."
    site, base = server
    _viewport(browser)
    pages = _pages_with(site, '<table')
    assert len(pages) > 10, pages
    problems = []
    for page in pages:
        browser.goto(base + page)
        r = browser.eval("""(() => {
            const main = document.querySelector('#quarto-document-content'), col = main.getBoundingClientRect(), out = [];
            const tables = [...main.querySelectorAll('table')];
            for (const t of tables) {
                const box = t.closest('.rsnb-table-scroll') || t, b = box.getBoundingClientRect();
                if (b.left < col.left - 1 || b.right > col.right + 1)
                    out.push(`table ${b.left|0}-${b.right|0} px outside the column ${col.left|0}-${col.right|0} px`);
                if (box !== t && t.getBoundingClientRect().width > b.width + 1 && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX))
                    out.push('a wide table in a box that does not scroll');
                for (const c of t.querySelectorAll('td')) {
                    const s = getComputedStyle(c), pad = parseFloat(s.paddingLeft) + parseFloat(s.paddingRight);
                    if (pad < 8) { out.push(`cell "${c.textContent.slice(0, 20)}" padded ${pad} px`); break; }
                    if (%s.test(c.textContent) && !['right', 'end'].includes(s.textAlign)) {
                        out.push(`number aligned ${s.textAlign}: ${c.outerHTML.slice(0, 100)}`); break; }
                }
            }
            const de = document.documentElement;
            if (de.scrollWidth > de.clientWidth + 1) out.push(`page scrolls sideways: ${de.scrollWidth} > ${de.clientWidth} px`);
            return {n: tables.length, out};
        })()""" % NUMBER_JS)
        problems += [f'{page}: {p}' for p in r['out']]
    assert problems == [], '\n'.join(problems[:30])

def _image_dpi(src):
    "The resolution a data: URI image records (PNG pHYs, JPEG JFIF density), else None."
    import base64, struct
    if not src.startswith('data:image/'): return None
    b = base64.b64decode(src.split(',', 1)[1])
    if b[:8] == b'\x89PNG\r\n\x1a\n':
        i = b.find(b'pHYs')
        if i < 0: return None
        ppu, _, unit = struct.unpack('>IIB', b[i + 4:i + 13])
        return ppu * 0.0254 if unit == 1 else None
    if b[:2] == b'\xff\xd8' and b[6:11] == b'JFIF\x00':
        unit, xd = b[13], struct.unpack('>H', b[14:16])[0]
        return xd if unit == 1 else xd * 2.54 if unit == 2 else None
    return None

MIN_DPI = 100
# Figures not yet re-drawn at 100 dpi, each page named with why; remove a page once its notebook is re-run.
DPI_PENDING = {
    # notebooks other work was editing when the figures were raised: their plotting cells still say 60-72 dpi
    'tiles.html', 'change.cli.html', 'inpainting.cli.html',
    # paper pages: the plotting cells say 100 dpi now, but the stored figures come from training runs (rsnb-repro PAPER)
    # that were not repeated for this; the next run of each page re-draws them
    'papers/bahri2019.html', 'papers/ecea.html', 'papers/rsseg_benchmark.html', 'papers/sgsln.html'}

def test_figures_are_sharp_and_legible(server, browser):
    "Every matplotlib figure on the site: drawn at >= 100 dpi, never upscaled, and not shrunk so far that a 10-pt label"
    "falls below 9 CSS px (scale x dpi / 72 x 10 pt)."
    site, base = server
    _viewport(browser)
    pages = [p for p in _pages_with(site, 'data:image/') if p not in DPI_PENDING]
    assert pages, 'no page with a figure'
    problems, n = [], 0
    for page in pages:
        browser.goto(base + page)
        imgs = browser.eval("""Promise.all([...document.querySelectorAll('#quarto-document-content .cell-output-display img')]
            .map(i => (i.complete ? Promise.resolve() : new Promise(r => i.onload = r)).then(() =>
                ({src: i.src, nw: i.naturalWidth, nh: i.naturalHeight, w: i.getBoundingClientRect().width}))))""")
        for im in imgs:
            dpi = _image_dpi(im['src'])
            if dpi is None: continue   # not a matplotlib figure (a logo, a stored photograph)
            n += 1
            label_px = im['w'] / im['nw'] * dpi / 72 * 10
            what = f"{page}: {im['nw']}x{im['nh']} px at {dpi:.0f} dpi shown {im['w']:.0f} px wide"
            if dpi < MIN_DPI - 0.5: problems.append(f'{what}: under {MIN_DPI} dpi')
            if im['w'] > im['nw'] + 1: problems.append(f'{what}: upscaled')
            if label_px < 9: problems.append(f'{what}: a 10-pt label is {label_px:.1f} px')
    assert n > 5, f'only {n} figures found'
    assert problems == [], '\n'.join(problems)

def _contrast_js():
    return """
    const rgba = s => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
    const over = (f, b) => [0, 1, 2].map(k => f[k] * f[3] + b[k] * (1 - f[3])).concat([1]);
    const bg = e => { const layers = []; for (let x = e; x; x = x.parentElement) {
            const c = rgba(getComputedStyle(x).backgroundColor); if (c[3] > 0) layers.push(c); if (c[3] >= 1) break; }
        return layers.reverse().reduce((b, f) => over(f, b), [255, 255, 255, 1]); };
    const lum = c => { const l = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
    const ratio = e => { const b = bg(e), f = over(rgba(getComputedStyle(e).color), b), L = [lum(f), lum(b)].sort((a, c) => c - a);
        return {ratio: (L[0] + 0.05) / (L[1] + 0.05), fg: getComputedStyle(e).color, bg: `rgb(${b.slice(0, 3).map(Math.round)})`}; };
    """

def test_search_results_are_legible(server, browser):
    "The search dropdown's title, section and snippet text (and the highlighted match), resting and under the pointer:"
    "WCAG AA contrast (>= 4.5:1), computed from the computed colours and the backgrounds behind them."
    site, base = server
    _viewport(browser)
    browser.goto(base + 'index.html')
    r = browser.eval("""(async () => {""" + _contrast_js() + """
        const i = document.querySelector('.smalldocs-search input');
        i.focus(); i.value = 'tile'; i.dispatchEvent(new Event('input'));
        let hits = [];
        for (let k = 0; k < 50 && !hits.length; k++) { await new Promise(r => setTimeout(r, 100)); hits = [...document.querySelectorAll('.search-result')]; }
        const out = [];
        for (const [n, a] of hits.slice(0, 5).entries()) {
            if (n === 1) a.classList.add('active');   // the highlighted row (arrow keys, hover) has its own background
            for (const e of [a, ...a.querySelectorAll('.search-result-title, .search-result-section, .search-result-text, mark')])
                if (e.textContent.trim()) out.push(Object.assign({cls: e.className || e.tagName, active: n === 1}, ratio(e)));
        }
        return out; })()""")
    assert r, 'no search results to measure'
    assert {x['cls'] for x in r} >= {'search-result-title', 'search-result-text'}, r
    low = [x for x in r if x['ratio'] < 4.5]
    print('search dropdown contrast: min %.2f:1 over %d text elements' % (min(x['ratio'] for x in r), len(r)))
    assert low == [], low
