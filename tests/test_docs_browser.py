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

def _fresh(site):
    idx = site/'index.html'
    if not idx.exists(): return False
    srcs = list((ROOT/'nbs').rglob('*.ipynb')) + [ROOT/'tools'/'build_docs.py', ROOT/'nbs'/'sidebar.yml', ROOT/'nbs'/'_quarto.yml']
    return idx.stat().st_mtime > max(p.stat().st_mtime for p in srcs)

@pytest.fixture(scope='module')
def server():
    site = ROOT/'_docs'
    if not _fresh(site):
        r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py')], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
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
