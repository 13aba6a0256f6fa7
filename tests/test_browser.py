"""The book in a browser, as its readers see it, in Debian's headless Chromium (nothing is
downloaded). The built book: every page rendered at 1400 px, plotly drawn offline, no table or
output wider than the page, every link resolving. JupyterLab, started by ``scripts/lab.sh``
(loopback, token) and driven through selenium and Debian's chromium-driver: chapter 7 runs all
its cells in the smoke profile, its live widget is moved and must print what ``python -m bnlib
clamp`` prints; a network page's re-run command is typed into a JupyterLab terminal and must
write only where the page says. These tests write in the clone (the smoke store, book/networks/,
a page in the top folder), so they share one file: the test command's workers (pytest-xdist,
--dist loadfile) run them one after another."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from bnlib import book
from bnlib.links import broken_links
from bnlib.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
needs_lab = pytest.mark.skipif(not (CHROMIUM and DRIVER and (ROOT / ".venv" / "bin" / "jupyter-lab").exists()),
                               reason="needs .venv's JupyterLab and Debian's chromium and chromium-driver "
                                      "(scripts/setup.sh installs them, the browser packages as root)")
WIDGET_LINE = re.compile(r"(\d+\.\d)% of γ set to 0 -> test accuracy (\d+\.\d\d)%")


# Run inside a page after it loaded: the tables of the article that reach past the right edge of
# its content column, written into the page where --dump-dom shows them.
WIDTH_PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var column = document.querySelector("article.bd-article") || document.querySelector("main");
  var edge = column.getBoundingClientRect().right, wide = [];
  document.querySelectorAll("article table").forEach(function (t) {
    if (t.getBoundingClientRect().right > edge + 1) wide.push(t.innerText.slice(0, 60).replace(/\\s+/g, " "));
  });
  // a printed output that scrolls sideways hides the end of its lines
  document.querySelectorAll("article .cell_output pre").forEach(function (p) {
    if (p.scrollWidth > p.clientWidth + 1) wide.push("output: " + p.innerText.slice(0, 60).replace(/\\s+/g, " "));
  });
  var out = document.createElement("pre"); out.id = "wide-tables"; out.textContent = JSON.stringify(wide);
  document.body.appendChild(out);
}, 200); });
</script>"""


def rendered(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM of a built page after its scripts ran, in a 1400 px wide window, and the tables
    wider than the page's content column there and the printed outputs that scroll sideways (measured by a copy of the page that carries
    :data:`WIDTH_PROBE`, beside it so that its relative links hold)."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", WIDTH_PROBE + "</body>"))
    try:
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={profile}", "--window-size=1400,1000", "--virtual-time-budget=10000", "--dump-dom",
             probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    finally:
        probe.unlink()
    found = re.search(r'<pre id="wide-tables"[^>]*>(.*?)</pre>', dom, re.S)  # the theme adds attributes to a <pre>
    assert found, f"{page.name}: the width probe did not run"
    wide = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    return dom[:found.start()] + dom[found.end():], wide


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_width_probe_finds_a_table_wider_than_the_column(tmp_path):
    cells = "".join(f"<td style='white-space: nowrap'>column number {i}</td>" for i in range(40))
    page = tmp_path / "page.html"
    line = " ".join(f"word{i}" for i in range(200))
    page.write_text(f"<html><body><article class='bd-article' style='width: 600px'><p>text</p>"
                    f"<table id='narrow'><tr><td>1</td></tr></table><table><tr>{cells}</tr></table>"
                    f"<div class='cell_output'><pre style='overflow-x: auto'>{line}</pre>"
                    f"<pre style='white-space: pre-wrap'>{line}</pre></div><pre style='overflow-x: auto'>{line}</pre>"
                    "</article></body></html>")
    dom, wide = rendered(page, tmp_path / "profile")
    assert len(wide) == 2 and wide[0].startswith("column number 0") and "text" in dom
    assert wide[1].startswith("output: word0")  # the scrolling output; the wrapped one and code pass


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_built_book_renders_a_plotly_figure(tmp_path):
    """Build the whole book (smoke profile, into a temporary folder) and let headless Chromium
    render the Figure 2 chapter: plotly.js must run offline and draw."""
    env = {**os.environ, "BNLIB_PROFILE": "smoke"}
    from bnlib.pages import network_pages

    [network_page] = network_pages("smoke", networks=("resnet-8",))  # one page per network, by papermill
    jb = Path(sys.executable).parent / "jupyter-book"
    built = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(tmp_path)], env=env,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert {p.stem for p in (html / "chapters").glob("*.html")} == {p.stem for p in CHAPTERS}
    # every page as a reader sees it at 1400 px: no test plumbing, no machine's paths, no
    # tracebacks or stderr, no numbers in scientific notation, no table wider than the content
    # column, and a figure drawn by plotly.js (offline) wherever the chapter draws one
    sources = {p.stem: p.read_text() for p in CHAPTERS}
    assert (html / "book" / "networks" / "resnet-8.html").is_file()
    pages = [html / "book" / "index.html", *sorted((html / "chapters").glob("*.html")),
             html / "book" / "networks" / "resnet-8.html", html / "book" / "reproducing.html"]
    # a few browsers at a time: a page mostly waits for its scripts' (virtual) time to pass
    with ThreadPoolExecutor(4) as pool:
        shown = list(pool.map(lambda page: rendered(page, tmp_path / f"profile-{page.stem}"), pages))
    for page, (dom, wide) in zip(pages, shown):
        assert wide == [], (page.name, wide)
        if page.stem == "04-training-only-batchnorm":
            assert "plot-container plotly" in dom and dom.count("main-svg") >= 2  # plotly.js ran and drew
        text = re.sub(r"<script.*?</script>|<style.*?</style>", "", dom, flags=re.S)
        visible = re.sub(r"<[^>]+>", " ", text)
        assert "NBVAL" not in visible and "nbval" not in visible, page.name
        assert str(ROOT) not in visible and str(tmp_path) not in visible and "/root/" not in visible, page.name
        assert "Traceback" not in visible and "output stderr" not in text, page.name
        assert not re.search(r"\b\d(\.\d+)?e[+-]\d{2}\b", visible), (page.name, re.search(r".{40}\de[+-]\d\d.{20}", visible))
        if ".show()" in sources.get(page.stem, "") or page.stem == "resnet-8":
            assert "plot-container plotly" in dom, page.name
    assert broken_links(html) == []  # every href and src of every page, anchors too


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _started_by(marker: str) -> list[int]:
    """The processes whose environment holds ``marker`` (the lab's own runtime folder): the
    server, its kernels, its terminals and whatever they started."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:  # gone, or not ours to read
                pass
    return found


class Lab:
    """A JupyterLab server and a headless Chromium looking at it."""

    def __init__(self, home: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.home, self.port, self.token = home, _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "settings" / "@jupyterlab" / "docmanager-extension"
        settings.mkdir(parents=True)
        # a test reads the chapters; it must not save their outputs into the clone
        (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
        news = home / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True)
        (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        self.marker = str(home / "runtime")
        env = {**os.environ, "BNLIB_PROFILE": "smoke", "PORT": str(self.port), "JUPYTER_RUNTIME_DIR": self.marker,
               "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data")}
        self.log = (home / "lab.log").open("w")
        self.server = subprocess.Popen(
            ["bash", "scripts/lab.sh", f"--IdentityProvider.token={self.token}", "--ServerApp.port_retries=0",
             "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={home / 'settings'}",
             f"--LabApp.workspaces_dir={home / 'workspaces'}",
             f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}"],  # not beside the chapters
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.driver = None
        try:
            self._wait(lambda: self._api("status"), 90, "JupyterLab to answer")
            options = webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--window-size=1400,1000"):
                options.add_argument(argument)
            self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        except BaseException:
            self.close()
            raise

    def _api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read() or b"{}")
        except OSError:
            return None

    def _wait(self, ready, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f"JupyterLab exited ({self.server.returncode}):\n{self.logged()}")
            value = ready()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}\n{self.logged()}")

    def logged(self) -> str:
        self.log.flush()
        return (self.home / "lab.log").read_text()[-3000:]

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def open(self, path: str) -> None:
        """Open a file of the clone in JupyterLab, as its URL does, and wait for its kernel."""
        self.driver.get(f"{self.url}/lab/tree/{path}?token={self.token}")
        self._wait(lambda: self.js("const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                                   "return !!(w && w.sessionContext && w.sessionContext.session"
                                   " && w.sessionContext.session.kernel"
                                   " && w.sessionContext.session.kernel.connectionStatus === 'connected')"),
                   120, f"{path} and its kernel")

    def run_all(self, seconds: float) -> None:
        """Run all cells of the open notebook and wait until every code cell has run."""
        self.js("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self._wait(lambda: self.js(
            "const w = window.jupyterapp.shell.currentWidget;"
            "const cells = w.content.widgets.filter(c => c.model.type === 'code');"
            "return w.sessionContext.session.kernel.status === 'idle'"
            " && cells.every(c => c.model.executionCount !== null && c.promptNode.textContent.indexOf('*') < 0)"),
            seconds, "all cells to run")

    def errors(self) -> list[str]:
        """The error outputs (tracebacks) of the open notebook's cells."""
        return self.js(
            "const out = [];"
            "for (const c of window.jupyterapp.shell.currentWidget.content.widgets) {"
            "  if (c.model.type !== 'code') continue;"
            "  for (let i = 0; i < c.model.outputs.length; i++) {"
            "    const o = c.model.outputs.get(i).toJSON();"
            "    if (o.output_type === 'error') out.push(o.ename + ': ' + o.evalue);"
            "  }"
            "}"
            "return out;")

    def printed(self) -> list[str]:
        """What each code cell of the open notebook printed (its stdout), in order."""
        return self.js(
            "return window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code')"
            ".map(c => { let text = '';"
            "  for (let i = 0; i < c.model.outputs.length; i++) {"
            "    const o = c.model.outputs.get(i).toJSON();"
            "    if (o.output_type === 'stream' && o.name === 'stdout') text += [].concat(o.text).join('');"
            "  }"
            "  return text; });")

    def close(self) -> None:
        """Quit the browser, shut the server down (its kernels and terminals with it) and make
        sure that nothing it started is left."""
        if self.driver is not None:
            self.driver.quit()
        if self.server.poll() is None:
            self._api("shutdown", method="POST")
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.send_signal(signal.SIGTERM)
                self.server.wait(30)
        deadline = time.monotonic() + 20
        while _started_by(self.marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _started_by(self.marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        assert not left, f"processes left running by JupyterLab: {left}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    started = Lab(tmp_path_factory.mktemp("lab"))
    yield started
    started.close()


def _clamp_cli(run: str, data: str, threshold: float, keep: str) -> str:
    """What ``python -m bnlib clamp`` prints for a run, in the widget's words."""
    command = [sys.executable, "-m", "bnlib", "clamp", run, "--threshold", str(threshold), "--data", data]
    printed = json.loads(subprocess.run(command + ([] if keep == "value" else ["--binarize", keep]), cwd=ROOT,
                                        capture_output=True, text=True, check=True).stdout)
    return f"{100 * printed['fraction_clamped']:.1f}% of γ set to 0 -> test accuracy {printed['test_accuracy']:.2f}%"


@needs_lab
def test_chapter_7_runs_in_jupyterlab_and_its_slider_clamps_live(lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    chapter = "chapters/07-clamping.ipynb"
    before = (ROOT / chapter).read_bytes()
    lab.open(chapter)
    kernel = lab.js("return window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.name")
    assert kernel == json.loads(before)["metadata"]["kernelspec"]["name"]  # the kernel the chapter names
    lab.run_all(600)
    assert lab.errors() == []
    # as under papermill: the same parameters cell, the same printed results
    papermilled = lab.home / "07-papermill.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(ROOT / chapter), str(papermilled), "-k", "python3",
                    "--cwd", str(ROOT / "chapters"), "--no-progress-bar"], env={**os.environ, "BNLIB_PROFILE": "smoke"},
                   capture_output=True, check=True)
    expected = ["".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
                for cell in nbformat.read(papermilled, as_version=4).cells if cell.cell_type == "code"]
    assert lab.printed() == expected and any(expected)

    def shown() -> str:
        texts = [e.text for e in lab.driver.find_elements(By.CSS_SELECTOR, ".widget-vbox .widget-output")]
        assert len(texts) == 1, f"one live widget expected, found {len(texts)}"
        return texts[0].strip()

    line = lab._wait(lambda: WIDGET_LINE.fullmatch(shown()) and shown(), 60, "the widget to print")
    # the run the chapter made live, as the page names it, and as the chapter chose it
    named = re.search(r"Live: (\S+) \(move the threshold", lab.driver.find_element(By.TAG_NAME, "body").text)
    assert named, "the live section does not name its run"
    run = str(ROOT / named.group(1))
    plan = Plan.from_parameters("smoke")
    assert run == book.live_run(plan, book.with_labels(plan.ensure(plan.gamma_grid())))
    assert line == _clamp_cli(run, plan.data_source, 0.01, "value")  # the slider's first position

    readout = lab.driver.find_element(By.CSS_SELECTOR, ".widget-vbox .widget-readout")
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys("0.3", Keys.ENTER)
    moved = lab._wait(lambda: shown() != line and shown(), 60, "the widget to follow the slider")
    assert moved == _clamp_cli(run, plan.data_source, 0.3, "value")

    Select(lab.driver.find_element(By.CSS_SELECTOR, ".widget-vbox .widget-dropdown select")) \
        .select_by_visible_text("others to ±1")
    binarised = lab._wait(lambda: shown() != moved and shown(), 60, "the widget to follow the menu")
    assert binarised == _clamp_cli(run, plan.data_source, 0.3, "one")
    assert lab.errors() == []
    lab.js("arguments[0].scrollIntoView({block: 'center'})", readout)
    lab.driver.save_screenshot(str(lab.home / "chapter-7.png"))
    assert (ROOT / chapter).read_bytes() == before  # read and run, never saved


def _tree(top: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ``top`` with its size and modification time, but the clone's git and
    virtual environment, and Python's bytecode caches (written by any import)."""
    files = {}
    for folder, subfolders, names in os.walk(top):
        subfolders[:] = [s for s in subfolders if not (Path(folder) == top and s in (".git", ".venv"))
                         and s != "__pycache__"]
        for name in names:
            path = Path(folder) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            files[path] = (stat.st_size, stat.st_mtime_ns)
    return files


@needs_lab
def test_a_network_page_is_made_again_as_printed_from_a_jupyterlab_terminal(lab):
    from selenium.webdriver.common.by import By

    plan = Plan.from_parameters("smoke")
    network = plan.profile.case_study
    note = book.remake_note(plan, network)
    command = next(line.strip() for line in note.splitlines() if line.strip().startswith("papermill "))
    page, status = ROOT / f"{network}.ipynb", lab.home / "status"
    assert not page.exists() and f"writes {network}.ipynb in that folder" in note and book.shown(plan.store) in note
    before = _tree(ROOT)
    lab.driver.get(f"{lab.url}/lab?token={lab.token}")
    lab._wait(lambda: lab.js("return !!window.jupyterapp"), 60, "JupyterLab")
    opened = lab.driver.execute_async_script(
        "const done = arguments[arguments.length - 1], app = window.jupyterapp;"
        "app.restored.then(() => app.commands.execute('terminal:create-new')).then(() => done('opened'), e => done(String(e)));")
    assert opened == "opened"
    keys = lab._wait(lambda: lab.driver.find_elements(By.CSS_SELECTOR, ".jp-Terminal .xterm-helper-textarea"),
                     60, "a terminal")[0]
    # xterm.js draws on a canvas: the screen's text is read from its buffer
    screen = ("const t = window.jupyterapp.shell.currentWidget.content._term.buffer.active; const lines = [];"
              "for (let i = 0; i < t.length; i++) lines.push(t.getLine(i).translateToString(true));"
              "return lines.join('\\n').trim();")
    lab._wait(lambda: lab.js(screen), 30, "the shell's prompt")
    keys.send_keys(f"{command}; echo $? > {status}\n")
    try:
        lab._wait(status.exists, 600, "the command to finish")
        lab.driver.save_screenshot(str(lab.home / "terminal.png"))
        assert status.read_text().strip() == "0", lab.js(screen)[-3000:]
        after = _tree(ROOT)
        written = {p for p in after if before.get(p) != after[p]} | (set(before) - set(after))
        assert page in written
        # the page, and the smoke profile's store that the note names: nothing else in the clone
        assert [p for p in written if p != page and not p.is_relative_to(plan.store)] == []
    finally:
        page.unlink(missing_ok=True)
