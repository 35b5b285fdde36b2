#!/usr/bin/env python3
"""The workspace in headless Chromium against the real daemon with real SIP peers (issue 13,
"Must show"); sip-test/workspace_chromium.sh starts the daemon and calls this.

Usage:
  workspace_chromium.py config CONFIG_DIR
      Turn a copy of config/ into the test's configuration, in place: the city line records
      its calls (the right channel is what the daemon sent the caller), digest MD5 (SIPp),
      `home-care` gets a music of its own (a generated pulse pattern no other prompt shares,
      prompts/moh/home-care-test.wav) and announces once (announce_every_seconds = 600), and
      op1 takes benefits only (so the caller moved to home-care stays there with its music).
  workspace_chromium.py run BASE OUT SIP_TARGET DB TOKEN CONFIG_DIR [--sip-only]
      The test itself (see run()). BASE is the admin URL, OUT the output folder (SIPp runs
      and screenshots land there), SIP_TARGET the daemon's SIP address, DB its SQLite file,
      TOKEN the admin token (setup and read-back only: accounts, the earlier appeal's route,
      the timeline). --sip-only leaves the browser out (for a daemon without the workspace
      pages): op1 is logged in and resumed through the API and its phone transfers the caller
      by REFER instead of the desk's button; every SIP, timing and audio check still runs.

Prints PASS/FAIL lines; exits 1 on the first failure.
"""
import datetime
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from queue_check import corr, envelope  # noqa: E402  (the same loudness envelopes as queue.sh)

CALLER = "+79135550177"
# the second caller: waits while op1 is held for the disposition, then is moved to an
# organisation's phone through the trunk
CALLER2 = "+79135550178"
# the card op1 finds on the desk and links to the call
CITIZEN = {"name": "Иванова Мария Петровна (тест)", "phones": ["+79135550999"]}
# op1's pause while the disposition of a `disposition_required` queue's call is missing
HOLD_REASON = "Поствызывная обработка"
CID_PREFIX = "hotline-ws-"
HOME_CARE_MOH = "prompts/moh/home-care-test.wav"
# what op1 writes down besides the directory's choices (directory_choices)
TYPED = {
    "address": "ул. Тестовая, 13",
    "notes": "Просит пересчитать пособие; тест рабочего места",
}
# the INVITE reaches op1's phone -> the desk shows the caller (the issue's bound)
POP_LIMIT_MS = 1000


class Failed(Exception):
    pass


def ok(what):
    print(f"PASS workspace: {what}", flush=True)


# --- configuration ---------------------------------------------------------------------------


def make_moh(path, seconds=12, rate=8000):
    """A 600 Hz tone switched loud/quiet in 200 ms slots by a fixed random pattern: its
    loudness envelope matches itself at one offset only and nothing else the daemon plays."""
    rnd = random.Random(13)
    slots = [rnd.choice((0.04, 0.6)) for _ in range(seconds * 5)]
    frames = bytearray()
    for i in range(seconds * rate):
        amp = slots[i * 5 // rate]
        s = int(amp * 32767 * (1 if (i * 600 * 2 // rate) % 2 == 0 else -1) * 0.5)
        frames += struct.pack("<h", s)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def edit_blocks(path, table, key, value, edit):
    text = open(path, encoding="utf-8").read()
    blocks = re.split(rf"(?m)^(?=\[\[{table}\]\])", text)
    hits = 0
    for i, b in enumerate(blocks):
        if re.search(rf'(?m)^{key}\s*=\s*"{re.escape(value)}"', b):
            blocks[i] = edit(b)
            hits += 1
    if hits != 1:
        raise Failed(f"{path}: [[{table}]] {key} = {value!r} found {hits} times")
    text = "".join(blocks)
    open(path, "w", encoding="utf-8").write(text)
    return tomllib.loads(text)


def set_key(block, key, value):
    if re.search(rf"(?m)^{key}\s*=", block):
        return re.sub(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", block)
    return block.rstrip("\n") + f"\n{key} = {value}\n\n"


def configure(folder):
    make_moh(os.path.join(folder, HOME_CARE_MOH))
    q = edit_blocks(
        f"{folder}/queues.toml", "queue", "name", "home-care",
        lambda b: set_key(set_key(b, "moh", f'"{HOME_CARE_MOH}"'), "announce_every_seconds", "600"),
    )
    home = next(x for x in q["queue"] if x["name"] == "home-care")
    if home.get("moh") != HOME_CARE_MOH or home.get("announce_every_seconds") != 600:
        raise Failed("could not give home-care its music")
    lines = edit_blocks(f"{folder}/lines.toml", "line", "id", "city",
                        lambda b: set_key(b, "record", "true"))
    if next(x for x in lines["line"] if x["id"] == "city").get("record") is not True:
        raise Failed("could not record the city line")
    # benefits requires the disposition before the operator's next call
    q = edit_blocks(f"{folder}/queues.toml", "queue", "name", "benefits",
                    lambda b: set_key(b, "disposition_required", "true"))
    if next(x for x in q["queue"] if x["name"] == "benefits").get("disposition_required") is not True:
        raise Failed("could not make benefits require the disposition")
    ops = edit_blocks(f"{folder}/operators.toml", "operator", "login", "op1",
                      lambda b: set_key(b, "skills", "{ benefits = 1 }"))
    if next(x for x in ops["operator"] if x["login"] == "op1").get("skills") != {"benefits": 1}:
        raise Failed("could not keep op1 to benefits")
    path = f"{folder}/hotline.toml"
    text, n = re.subn(r"(?m)^digest_algorithms\s*=.*$", 'digest_algorithms = ["MD5"]',
                      open(path, encoding="utf-8").read())
    if n != 1:
        raise Failed("could not set sip.digest_algorithms")
    # the trunk's far end (a SIPp UAS on a free port, workspace_trunk.xml) takes the calls the
    # daemon places: the transfer to an organisation's phone
    port = free_block(7, [])
    text, n = re.subn(r'(?m)^(name = "local-test"\n)', f'\\1outbound = "sip:127.0.0.1:{port}"\n', text)
    if n != 1:
        raise Failed("could not give the trunk an outbound target")
    open(path, "w", encoding="utf-8").write(text)
    open(os.path.join(folder, "trunk_port"), "w").write(str(port))


# --- the admin API (setup and read-back) -----------------------------------------------------


class Api:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def ok(self, method, path, body=None, want=(200,)):
        status, got = self.call(method, path, body)
        if status not in want:
            raise Failed(f"{method} {path}: HTTP {status} {got}")
        return got

    def operator(self, op):
        got = self.ok("GET", "/api/v1/operators")
        return next((o for o in got["operators"] if o["id"] == op), {})

    def queue(self, name):
        got = self.ok("GET", "/api/v1/queues")
        return next((q for q in got["queues"] if q["name"] == name), {})


def until(what, check, timeout, step=0.1):
    """Polls check() until it returns something true; that value, or Failed after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except Failed:
            raise
        except Exception as e:  # the page or the API between two states: try again
            last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise Failed(f"{what}: not within {timeout} s ({last})")
            time.sleep(step)
            continue
        if last and not isinstance(last, str):
            return last
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout} s" + (f" ({last})" if last else ""))
        time.sleep(step)


# --- SIPp ------------------------------------------------------------------------------------


class Sipp:
    """One SIPp in OUT/NAME (pcap/ linked for play_pcap_audio), its clock in UTC."""

    def __init__(self, out, name, target, port_base, args, limit):
        self.dir = os.path.join(out, name)
        os.makedirs(self.dir, exist_ok=True)
        link = os.path.join(self.dir, "pcap")
        if not os.path.islink(link):
            os.symlink("/usr/share/sip-tester", link)
        self.args = args + [
            target, "-t", "u1", "-i", "127.0.0.1", "-bind_local", "-mi", "127.0.0.1",
            "-p", str(port_base), "-mp", str(port_base + 2), "-ci", "127.0.0.1",
            "-cp", str(port_base + 6), "-nostdin",
            "-trace_stat", "-stf", "stat.csv", "-trace_counts",
            "-trace_err", "-error_file", "errors.log",
            "-trace_msg", "-message_file", "messages.log",
            "-trace_logs", "-log_file", "actions.log",
        ]
        with open(os.path.join(self.dir, "command.txt"), "w") as f:
            f.write(" ".join(["sipp"] + self.args) + "\n")
        self.proc = subprocess.Popen(
            ["timeout", "-k", "5", str(limit), "sipp"] + self.args, cwd=self.dir,
            stdout=open(os.path.join(self.dir, "sipp.stdout"), "w"),
            stderr=open(os.path.join(self.dir, "sipp.stderr"), "w"),
            env=dict(os.environ, TZ="UTC"),
        )

    def log(self):
        try:
            return open(os.path.join(self.dir, "actions.log"), encoding="latin-1").read()
        except OSError:
            return ""

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"SIPp in {self.dir} still running after {timeout} s") from None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def received_at(self, first_line_re):
        """Epoch ms of the first message received whose first line matches, from SIPp's
        message trace (each message is headed by its wall-clock time, microseconds)."""
        try:
            text = open(os.path.join(self.dir, "messages.log"), encoding="latin-1").read()
        except OSError:
            return None
        pat = re.compile(
            r"-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)\s*\n"
            r"UDP message received \[\d+\] bytes :\s*\n\s*\n?(" + first_line_re + r")")
        m = pat.search(text)
        if not m:
            return None
        stamp = datetime.datetime.strptime(m.group(1).replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f")
        return stamp.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


# --- the browser -----------------------------------------------------------------------------


class Page:
    """One signed-in browser (its own profile, so its own session cookie)."""

    def __init__(self, base, out, who):
        from selenium.webdriver.common.by import By

        self.By = By
        self.base, self.out, self.who = base, out, who
        from browser import chromium

        self.d = chromium(1366, 768)

    def login(self, user, password):
        By = self.By
        self.d.get(self.base + "/")
        box = until("the login form", lambda: self.d.find_element(By.ID, "login"), 15)
        box.clear()
        box.send_keys(user)
        self.d.find_element(By.ID, "password").send_keys(password)
        self.d.find_element(By.CSS_SELECTOR, "form.form button[type=submit]").click()
        until(f"{user} signed in", lambda: "/login" not in self.d.current_url
              and self.status("/api/v1/me") == 200, 15)

    def open(self, path):
        self.d.get(self.base + path)

    def shot(self, name, show=None):
        """A screenshot into OUT/NAME.png, with the element SHOW (CSS) scrolled into view."""
        if show:
            for el in self.css(show)[:1]:
                self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        self.d.save_screenshot(os.path.join(self.out, f"{name}.png"))

    def css(self, sel):
        return self.d.find_elements(self.By.CSS_SELECTOR, sel)

    def one(self, what, sel, timeout=10, visible=True):
        def find():
            els = [e for e in self.css(sel) if not visible or e.is_displayed()]
            return els[0] if els else None
        return until(f"{self.who}: {what} ({sel})", find, timeout)

    def attr_is(self, what, sel, attr, value, timeout=10):
        def check():
            els = self.css(sel)
            got = els[0].get_attribute(attr) if els else "(missing)"
            return els[0] if got == value else f"{attr}={got!r}"
        return until(f"{self.who}: {what}", check, timeout)

    def status(self, path):
        return self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {credentials: 'same-origin'})"
            ".then(r => done(r.status), e => done(-1));", path)

    def live_up(self):
        self.attr_is("the live connection up", "#live-status", "data-live", "up", 10)

    def quit(self):
        self.d.quit()


# the desk notes when the screen pop first shows the caller's number (__numberAt) and when it
# shows both the number and the earlier appeal (__popAt), by Date.now() (the same clock as
# SIPp's trace), so the browser's own polling does not count against the bound
WATCH_POP = """
window.__popAt = null;
window.__numberAt = null;
const digits = arguments[0], earlier = arguments[1];
const look = () => {
  if (window.__popAt !== null) return;
  const pop = document.querySelector('#screen-pop');
  if (!pop || pop.hidden || pop.getClientRects().length === 0) return;
  const num = pop.querySelector('[data-caller-number]');
  if (!num || !num.textContent.replace(/\\D/g, '').includes(digits)) return;
  if (window.__numberAt === null) window.__numberAt = Date.now();
  const li = pop.querySelector('#earlier-appeals li[data-appeal-id="' + earlier + '"]');
  if (li && li.getClientRects().length > 0) window.__popAt = Date.now();
};
new MutationObserver(look).observe(document.documentElement,
  {subtree: true, childList: true, attributes: true, characterData: true});
look();
"""


def board_shown(board, op):
    """What op's row on the board offers: the texts of its buttons shown, or «—»."""
    return [el.text for el in board.css(f'tr[data-operator="{op}"] [data-cell="actions"] > *')
            if el.is_displayed()]


def board_offers(board, op, want, what, timeout=10):
    """Waits until op's row on the board offers exactly WANT (button texts, or ["—"])."""
    until(f"the board offering {want} for {op} ({what})",
          lambda: board_shown(board, op) == want or f"shown {board_shown(board, op)}", timeout)


def board_actions(board, desk):
    """The board offers op1 (paused) «Снять паузу» and «Вывести», op2 («Не в очередях»)
    nothing: «—»; its column head is «В состоянии». The supervisor takes op1 off the pause
    from the board (the keyboard lands on «Пауза», now offered instead) and pauses op1 again
    («По решению руководителя»); the desk follows both."""
    board.attr_is("op2 not logged in on the board", 'tr[data-operator="op2"]', "data-state",
                  "logged_out")
    if board_shown(board, "op1") != ["Снять паузу", "Вывести"]:
        raise Failed(f"the board's actions for op1 (paused): {board_shown(board, 'op1')}")
    if board_shown(board, "op2") != ["—"]:
        raise Failed(f"the board's actions for op2, not logged in: {board_shown(board, 'op2')}")
    heads = [th.text for th in board.css("table.operators thead th")]
    if "В состоянии" not in heads:
        raise Failed(f"the board's operator columns: {heads}")
    # time in the state counts for op1 (paused), not for op2 (not at work)
    until("op1's time in the state on the board",
          lambda: board.one("op1's time", 'tr[data-operator="op1"] [data-cell="time"]').text != ""
          or "empty", 5)
    op2_time = board.one("op2's time", 'tr[data-operator="op2"] [data-cell="time"]').text
    if op2_time != "":
        raise Failed(f"op2 is logged out, yet the board counts its time in the state: {op2_time!r}")
    board.shot("1b-board-actions", "table.operators")
    board.one("«Снять паузу» for op1", 'tr[data-operator="op1"] button[data-action="unpause"]').click()
    board.attr_is("op1 available on the board", 'tr[data-operator="op1"]', "data-state", "available")
    board_offers(board, "op1", ["Пауза", "Вывести"], "unpaused from the board")

    def pause_focused():
        el = board.d.switch_to.active_element
        return el if el.get_attribute("data-action") == "pause" else \
            f"focus on {el.get_attribute('outerHTML')[:80]!r}"
    focused = until("the keyboard's focus on «Пауза» after «Снять паузу»", pause_focused, 5)
    desk.attr_is("op1 available on the desk after the board's «Снять паузу»", "#desk-state",
                 "data-state", "available")
    focused.click()
    board.attr_is("op1 paused again from the board", 'tr[data-operator="op1"]', "data-state", "paused")
    board_offers(board, "op1", ["Снять паузу", "Вывести"], "paused from the board")
    reason = board.one("op1's pause reason", 'tr[data-operator="op1"] [data-cell="reason"]').text
    if reason != "По решению руководителя":
        raise Failed(f"the board's pause reason for op1 paused from the board: {reason!r}")
    desk.attr_is("op1 paused on the desk after the board's «Пауза»", "#desk-state", "data-state",
                 "paused")
    ok("the board offers op1 (paused) «Снять паузу» and «Вывести», op2 («Не в очередях») «—»; "
       "column «В состоянии»; «Снять паузу» and «Пауза» from the board reach the desk")


def directory_choices(api):
    """What op1 picks from the directory (the daemon's API, so the ids are real): a benefits
    service, the first district, the organisation the daemon suggests for both, the first
    disposition; and another organisation, for the earlier appeal. Each as (id, name)."""
    services = api.ok("GET", "/api/v1/services")["services"]
    service = next((x for x in services if x.get("category") == "benefits"), services[0])
    district = api.ok("GET", "/api/v1/districts")["districts"][0]
    got = api.ok("GET", f"/api/v1/organisations?service={service['id']}&district={district['id']}")
    orgs = got["organisations"]
    org = next((o for o in orgs if o["id"] == got.get("suggested")), orgs[0])
    other = next(o for o in orgs if o["id"] != org["id"])
    disposition = api.ok("GET", "/api/v1/case-codes")["dispositions"][0]
    return {
        "service": (service["id"], service["title"]),
        "district": (district["id"], district["name"]),
        "organisation": (org["id"], org["name"]),
        "disposition": (disposition["id"], disposition["name"]),
    }, (other["id"], other["name"])


def fill(page, what, sel, value):
    """Sets the field SEL to VALUE: a text (typed), or a directory entry (id, name). A select
    gets the option with that id as value (or the name as text); a text field with a datalist
    gets the datalist entry of that id or name typed; without one, the id. Returns what was
    set as (id or text, what a person reads)."""
    from selenium.webdriver.support.ui import Select

    el = page.one(what, sel)
    if isinstance(value, str):
        el.clear()
        el.send_keys(value)
        return value, value
    ident, name = value
    if el.tag_name == "select":
        opts = Select(el).options
        pick = next((o for o in opts if o.get_attribute("value") == ident), None) or next(
            (o for o in opts if name in o.text), None)
        if pick is None:
            raise Failed(f"{what} ({sel}) offers neither {ident!r} nor {name!r}")
        Select(el).select_by_value(pick.get_attribute("value"))
        return ident, name
    typed = ident
    listed = el.get_attribute("list")
    if listed:
        for o in page.css(f'datalist[id="{listed}"] option'):
            v, label = o.get_attribute("value"), (o.get_attribute("label") or o.text or "")
            if v == ident or v == name or (name in label and v):
                typed = v
                break
    el.clear()
    el.send_keys(typed)
    return ident, name


# --- the audio the caller got ----------------------------------------------------------------


def read_channel(path, channel, start, stop):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getframerate() != 8000:
            raise Failed(f"{path}: not 16-bit 8 kHz")
        n = w.getnchannels()
        w.setpos(max(0, min(int(start * 8000), w.getnframes())))
        raw = w.readframes(max(0, int((stop - start) * 8000)))
        end = w.getnframes() / 8000
    pcm = struct.unpack(f"<{len(raw) // 2}h", raw)
    return list(pcm[channel::n]), end


def best_match(segment_env, prompt_path):
    """How well the segment's loudness follows the prompt (looped, as music on hold is) at
    the best offset: the highest envelope correlation over every 100 ms offset."""
    with wave.open(prompt_path, "rb") as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    pcm = struct.unpack(f"<{len(raw) // 2}h", raw)
    if rate == 16000:
        pcm = pcm[::2]
    env = envelope(list(pcm))
    if not env:
        return 0.0
    loops = env * (len(segment_env) // len(env) + 2)
    return max(corr(segment_env, loops[k:k + len(segment_env)]) for k in range(len(env)))


def check_music(recording, transferred_ms, ended_ms, config_dir):
    """The recording's right channel (what the daemon sent the caller) from 3 s after the
    transfer to the caller's hang-up must follow home-care's music, and clearly better than the
    music the caller had in benefits (the shipped default) or than the 4.5 s before the
    transfer do (the operator's part: a short window, so its best offset alone reaches ~0.5)."""
    _, end = read_channel(recording, 1, 0, 0)
    moved = end - (ended_ms - transferred_ms) / 1000
    if end - moved < 8:
        raise Failed(f"the caller was in home-care only {end - moved:.1f} s before hanging up")
    after, _ = read_channel(recording, 1, moved + 3, end - 0.3)
    before, _ = read_channel(recording, 1, max(0, moved - 5), moved - 0.5)
    seg, ctl = envelope(after), envelope(before)
    home = best_match(seg, os.path.join(config_dir, HOME_CARE_MOH))
    default = best_match(seg, os.path.join(config_dir, "prompts/moh/default.wav"))
    control = best_match(ctl, os.path.join(config_dir, HOME_CARE_MOH))
    loud = sum(seg) / len(seg) if seg else 0
    detail = (f"after the transfer the caller's audio follows home-care's music by {home:.2f} "
              f"(benefits' music {default:.2f}; before the transfer {control:.2f}), "
              f"{end - moved:.1f} s in home-care")
    if home < 0.8 or default > home - 0.3 or control > home - 0.3 or loud < 50:
        raise Failed(detail + f", loudness {loud:.0f}")
    return detail


# --- the run ---------------------------------------------------------------------------------


def ms_of(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def free_block(span, used):
    out = subprocess.run([sys.executable, os.path.join(HERE, "free_port.py"), str(span)]
                         + [str(p) for p in used], capture_output=True, text=True, check=True)
    port = int(out.stdout.strip())
    used.extend(range(port, port + span))
    return port


def run(base, out, target, db, token, config_dir, sip_only):
    api = Api(base, token)
    used = []
    sipps, pages = [], []
    try:
        r = steps(api, base, out, target, db, config_dir, sip_only, used, sipps, pages)
        # every page worked under the daemon's Content-Security-Policy, nothing refused
        from browser import csp_refusals
        refused = [(p.who, m) for p in pages for m in csp_refusals(p.d)]
        if refused:
            raise Failed(f"the Content-Security-Policy refused: {refused}")
        if pages:
            ok(f"{len(pages)} pages' consoles: nothing refused by the Content-Security-Policy")
        return r
    except Failed:
        # what each page showed when it failed
        for i, p in enumerate(pages):
            try:
                p.shot(f"failed-{i + 1}-{p.who.replace(' ', '-').replace(chr(39), '')}")
            except Exception as e:  # the browser itself gone: the failure says enough
                print(f"no screenshot of {p.who}: {e}", file=sys.stderr)
        raise
    finally:
        for p in pages:
            p.quit()
        for s in sipps:
            s.stop()


def steps(api, base, out, target, db, config_dir, sip_only, used, sipps, pages):
    # 1. op1's phone registers with digest; its calls are workspace_operator.xml (answers 4 s
    # after the INVITE, then talks until the desk's transfer takes the caller away), or, with
    # --sip-only, operator_refer.xml (answers, then REFERs the caller to home-care itself).
    calls = "operator_refer.xml" if sip_only else "workspace_operator.xml"
    phone = Sipp(out, "op1-phone", target, free_block(7, used),
                 ["-sf", f"{HERE}/scenarios/operator_phone.xml", "-oocsf", f"{HERE}/scenarios/{calls}",
                  "-m", "1", "-d", "300000", "-rtp_echo", "-s", "op1", "-au", "op1",
                  "-ap", "op1-secret", "-key", "domain", "127.0.0.1"], 320)
    sipps.append(phone)
    until("op1's phone registered", lambda: api.operator("op1").get("registered"), 15)
    ok(f"op1's SIPp phone registered with digest ({len(api.operator('op1').get('contacts', []))} contact)")

    # 2. the earlier call of the same number leaves the earlier appeal
    earlier_call = Sipp(out, "earlier-call", target, free_block(7, used),
                        ["-sf", f"{HERE}/scenarios/workspace_earlier_call.xml", "-s", "3758787",
                         "-key", "caller", CALLER, "-m", "1",
                         "-cid_str", f"{CID_PREFIX}earlier-%u-%p@%s"], 40)
    if earlier_call.wait(45) != 0:
        raise Failed(f"the earlier call failed: see {earlier_call.dir}")

    def earlier_appeal():
        got = api.ok("GET", f"/api/v1/appeals?caller={CALLER.lstrip('+')}")
        mine = [a for a in got["appeals"] if a["call_id"].startswith(f"{CID_PREFIX}earlier-")
                and a.get("ended_at")]
        return mine[0] if mine else None
    earlier = until("the earlier appeal stored", earlier_appeal, 15, 0.3)
    ok(f"the earlier call from the caller's number left appeal {earlier['id']}")

    choices, other_org = directory_choices(api)
    citizen = api.ok("POST", "/api/v1/citizens", CITIZEN, want=(201,))
    orgs = tomllib.load(open(os.path.join(config_dir, "organisations.toml"), "rb"))["organisation"]
    trunk = None
    if not sip_only:
        trunk_port = int(open(os.path.join(config_dir, "trunk_port")).read())
        used.extend(range(trunk_port, trunk_port + 7))
        trunk = Sipp(out, "trunk", target, trunk_port,
                     ["-sf", f"{HERE}/scenarios/workspace_trunk.xml", "-m", "1", "-rtp_echo"], 200)
        sipps.append(trunk)

    # 3. op1's desk open, logged in to benefits, paused so that the caller waits on the board
    if sip_only:
        api.ok("POST", "/api/v1/operators/op1/login", {"queues": []})
        api.ok("POST", "/api/v1/operators/op1/pause", {"reason": "break"})
        desk = board = waiting_appeal = None
    else:
        desk = Page(base, out, "op1's desk")
        pages.append(desk)
        desk.login("op1", "op1-secret")
        if "/desk" not in desk.d.current_url:
            raise Failed(f"op1 landed on {desk.d.current_url}, not /desk")
        desk.live_up()
        who = desk.one("the user's name", "#user-name").text
        if "Оператор 1" not in who:
            raise Failed(f"the desk's #user-name says {who!r}")
        desk.one("the log-in button", "#btn-login").click()
        desk.attr_is("op1 available", "#desk-state", "data-state", "available")
        if "benefits" not in api.operator("op1").get("queues", []):
            raise Failed(f"op1 is not in benefits after #btn-login: {api.operator('op1')}")
        desk.shot("1-desk-available")
        fill(desk, "the pause reason", "select#pause-reason", ("break", "Перерыв"))
        desk.one("the pause button", "#btn-pause").click()
        desk.attr_is("op1 paused", "#desk-state", "data-state", "paused")
        ok("op1 signed in through /login, the desk logged op1 in to benefits (#btn-login) and paused")

        board = Page(base, out, "supervisor's board")
        pages.append(board)
        board.login("supervisor", "supervisor-secret")
        board.open("/board")
        board.live_up()
        board.one("the benefits queue", 'section[data-queue="benefits"]')
        board.attr_is("op1 paused on the board", 'tr[data-operator="op1"]', "data-state", "paused")
        board_actions(board, desk)
        desk.d.execute_script(WATCH_POP, CALLER.lstrip("+"), earlier["id"])

    # 4. the caller calls, presses 1 and waits: the board shows the caller waiting
    caller = Sipp(out, "caller", target, free_block(7, used),
                  ["-sf", f"{HERE}/scenarios/workspace_caller.xml", "-s", "3758787",
                   "-key", "caller", CALLER, "-m", "1", "-cid_str", f"{CID_PREFIX}call-%u-%p@%s"], 120)
    sipps.append(caller)
    if sip_only:
        waiting = until("the caller waiting in benefits (API)",
                        lambda: api.queue("benefits").get("waiting"), 20)
        ok(f"the caller waits in benefits while op1 is paused (GET /api/v1/queues: {waiting})")
    else:
        row = board.one("the caller waiting in benefits",
                        'section[data-queue="benefits"] [data-waiting-appeal]', 20)
        waiting_appeal = row.get_attribute("data-waiting-appeal")
        board.shot("2-board-caller-waiting")
        ok(f"the board shows the caller waiting in benefits (appeal {waiting_appeal})")

    # 5. op1 resumes; the INVITE reaches the phone; the desk pops within 1 s
    if sip_only:
        api.ok("POST", "/api/v1/operators/op1/unpause")
    else:
        desk.one("the resume button", "#btn-resume").click()
    until("the INVITE at op1's phone", lambda: "offered " in phone.log() or "answered " in phone.log(), 20)
    invite_ms = until("the INVITE in the phone's message trace",
                      lambda: phone.received_at(r"INVITE sip:"), 5)
    if not sip_only:
        try:
            pop_ms = until("the screen pop with the caller's number and the earlier appeal",
                           lambda: desk.d.execute_script("return window.__popAt"), 5, 0.05)
        finally:
            desk.shot("3-desk-screen-pop")
        number_ms = desk.d.execute_script("return window.__numberAt")
        delay = pop_ms - invite_ms
        if delay > POP_LIMIT_MS:
            raise Failed(f"the screen pop showed the caller and the earlier appeal {delay:.0f} ms "
                         f"after the INVITE reached op1's phone (the number at "
                         f"{number_ms - invite_ms:.0f} ms); limit {POP_LIMIT_MS} ms")
        num = desk.one("the caller's number", "#screen-pop [data-caller-number]").text
        ok(f"the desk's pop showed the caller's number {number_ms - invite_ms:.0f} ms and the "
           f"earlier appeal {earlier['id']} {delay:.0f} ms after the INVITE reached op1's phone "
           f"(limit {POP_LIMIT_MS} ms; number shown {num!r})")
    else:
        ok(f"the INVITE reached op1's phone at {invite_ms / 1000:.3f} (SIPp's message trace)")

    def appeal_now():
        got = api.ok("GET", f"/api/v1/appeals?caller={CALLER.lstrip('+')}")
        mine = [a for a in got["appeals"] if a["call_id"].startswith(f"{CID_PREFIX}call-")]
        return mine[0] if mine else None
    appeal = until("the caller's appeal", appeal_now, 10, 0.3)
    aid = appeal["id"]

    # 6. op1 answers on the phone; the board shows op1 on the call; the desk's form is filled
    until("op1's phone answering", lambda: "answered " in phone.log(), 15)
    fields = {}
    if not sip_only:
        if waiting_appeal != aid:
            raise Failed(f"the board's waiting row named {waiting_appeal}, the call is {aid}")
        board.attr_is("op1 on the call on the board", 'tr[data-operator="op1"]', "data-state",
                      "on_call", 5)
        # resumed on the desk: the board's live events took «Снять паузу» back to «Пауза»
        board_offers(board, "op1", ["Пауза", "Вывести"], "on the call, by the live events", 5)
        board.shot("4-board-op1-on-call", 'tr[data-operator="op1"]')
        desk.attr_is("op1 on the call on the desk", "#desk-state", "data-state", "on_call", 5)
        # everything but the disposition: benefits requires it, so op1 is held after the call
        for name, value in {**choices, **TYPED}.items():
            if name == "disposition":
                continue
            fields[name] = fill(desk, f"the appeal form's {name}",
                                f'form#appeal-form [name="{name}"]', value)
        until("the appeal autosaved («Сохранено»)", lambda: desk.one(
            "the save mark", "#appeal-saved").text.strip().startswith("Сохранено"), 10)
        # the citizen: found by name on the desk, picked, linked to the appeal, shown in the pop
        box = desk.one("the citizen search", "#citizen-q")
        box.clear()
        box.send_keys(CITIZEN["name"].split()[0])
        desk.one("the citizen search button", "#btn-citizen-find").click()
        desk.one("the citizen found", f'#citizen-results button[data-pick-citizen="{citizen["id"]}"]').click()
        until("the citizen linked to the appeal (citizen_id)", lambda: api.ok(
            "GET", f"/api/v1/appeals/{aid}").get("citizen_id") == citizen["id"], 10, 0.3)
        desk.one("the picked citizen's card in the pop",
                 f'#screen-pop #citizen-card[data-citizen-id="{citizen["id"]}"]', 10)
        desk.shot("5-desk-appeal-form", "#appeal-form")
        ok(f"op1 answered on the phone, the board showed op1 on_call, the form saved: "
           f"{ {k: v[1] for k, v in fields.items()} }; the citizen found by name on the desk, "
           f"picked and linked (citizen_id {citizen['id']}), the pop shows the card")

        # 7. the transfer button moves the caller to home-care; op1 wraps up
        desk.one("the home-care transfer button", 'button[data-transfer-queue="home-care"]').click()
    until("op1's phone left the call (BYE)", lambda: "left the call" in phone.log()
          or "transferred " in phone.log(), 15)
    if not sip_only:
        board.attr_is("op1 in wrap-up on the board", 'tr[data-operator="op1"]', "data-state",
                      "wrap_up", 5)
        board.shot("6-board-op1-wrap-up", 'tr[data-operator="op1"]')
        desk.one("the wrap-up countdown", "#wrapup-countdown")
        hold_and_transfer_to_organisation(api, out, target, used, sipps, phone, trunk, desk,
                                          board, choices, orgs, config_dir)

    def timeline():
        a = api.ok("GET", f"/api/v1/appeals/{aid}")
        kinds = [(e["kind"], e.get("data") or {}) for e in a["events"]]
        moved = [i for i, (k, d) in enumerate(kinds) if k == "transferred"
                 and d.get("target") == "home-care" and d.get("kind") == "queue"]
        entered = [i for i, (k, d) in enumerate(kinds) if k == "entered_queue"
                   and "home-care" in json.dumps(d)]
        if moved and entered and entered[-1] > moved[0]:
            return a
        return f"events {[k for k, _ in kinds]}"
    appeal = until("transferred + entered_queue home-care on the timeline", timeline, 10, 0.3)
    ok("the appeal's timeline: transferred (queue home-care) then entered_queue home-care"
       + ("" if sip_only else "; the board showed op1 in wrap_up"))

    # 8. the caller hangs up in home-care; what it got there was home-care's music
    if caller.wait(100) != 0:
        raise Failed(f"the caller's SIPp failed: see {caller.dir}")
    if "hung up" not in caller.log():
        raise Failed("the caller did not hang up itself (the daemon ended the call first)")

    def ended():
        a = api.ok("GET", f"/api/v1/appeals/{aid}")
        return a if a.get("ended_at") else None
    appeal = until("the appeal ended", ended, 10, 0.3)
    moved_ms = ms_of(next(e["at"] for e in appeal["events"] if e["kind"] == "transferred"))
    recording = os.path.join(os.path.dirname(db), "recordings", f"{aid}.wav")
    until("the call's recording", lambda: os.path.exists(recording), 10, 0.3)
    time.sleep(0.5)
    ok(check_music(recording, moved_ms, ms_of(appeal["ended_at"]), config_dir))

    if sip_only:
        return 0

    # 9. the registry lists the appeal; its card shows the fields and the timeline
    queue_titles = {x["name"]: x.get("title") or x["name"] for x in tomllib.load(
        open(os.path.join(config_dir, "queues.toml"), "rb"))["queue"]}
    desk.open("/registry")
    row = desk.one("the appeal in the registry", f'tr[data-appeal-id="{aid}"]').text
    desk.shot("7-registry")
    final_queue = appeal.get("queue") or "home-care"
    if queue_titles[final_queue] not in row or re.search(rf"\b{re.escape(final_queue)}\b", row):
        raise Failed(f"the registry row shows {row!r}, not the queue's title {queue_titles[final_queue]!r}")
    ok(f"the registry row names the queue by its title ({queue_titles[final_queue]!r}), not its id")
    desk.open(f"/appeals/{aid}")
    desk.one("the appeal card's timeline", "#appeal-timeline li")
    card = desk.d.find_element(desk.By.TAG_NAME, "body").text
    desk.shot("8-appeal-card")
    fields["disposition"] = choices["disposition"]
    missing = [f"{k}={v[1]!r}" for k, v in fields.items() if v[1] not in card]
    if missing:
        raise Failed(f"the appeal card lacks {', '.join(missing)}")
    # names, not ids: the directory's ids, the queue ids, the raw event kinds are nowhere
    ids = [v[0] for k, v in fields.items() if k in ("service", "district", "organisation",
                                                    "disposition")] + ["benefits", "home-care"]
    shown = [i for i in ids if re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", card)]
    raw = [k for k in ("case_updated", "entered_queue", "ivr_choice", "citizen_linked",
                       "main:1", "queue-benefits") if k in card]
    if shown or raw:
        raise Failed(f"the appeal card shows ids {shown} / raw words {raw}")
    if CITIZEN["name"] not in card or "1 — " + queue_titles["benefits"] not in card:
        raise Failed("the appeal card lacks the citizen's name or the menu choice in words")
    stored = api.ok("GET", f"/api/v1/appeals/{aid}")
    wrong = {k: stored.get(k) for k, v in fields.items() if stored.get(k) != v[0]}
    if wrong:
        raise Failed(f"the stored appeal has {wrong}, the form was given "
                     f"{ {k: fields[k][0] for k in wrong} }")
    org = fields["organisation"][0]
    ok(f"/registry lists the appeal; its card shows {', '.join(fields)} by name (no directory or "
       f"queue ids, no raw event kinds), the citizen, the menu choice in words and the timeline; "
       f"stored as typed and routed to {org!r}")

    # 10. op1's session may not open the board
    code = desk.status("/board")
    desk.open("/board")
    desk.shot("9-op1-board-403")
    if code != 403:
        raise Failed(f"op1's session got {code} on /board")
    said = desk.d.find_element(desk.By.TAG_NAME, "body").text
    if "доступ" not in said:
        raise Failed(f"op1's 403 page does not say in Russian there is no access: {said[:200]!r}")
    ok("op1's session gets 403 on /board, a Russian page saying there is no access")

    # 11. an organisation's account sees only the applications routed to it
    version = api.ok("GET", f"/api/v1/appeals/{earlier['id']}")["version"]
    api.ok("PATCH", f"/api/v1/appeals/{earlier['id']}",
           {"status": "in_progress", "organisation": other_org[0], "version": version})
    api.ok("POST", "/api/v1/users", {"login": "tcso-north", "display_name": "ЦСО Север (тест)",
                                     "role": "organisation", "organisation_id": org,
                                     "password": "tcso-north-secret-13"}, want=(200, 201))
    view = Page(base, out, "the organisation's view")
    pages.append(view)
    view.login("tcso-north", "tcso-north-secret-13")
    if "/org" not in view.d.current_url:
        view.open("/org")
    view.one("the routed appeal at /org", f'tr[data-appeal-id="{aid}"]')
    rows = [e.get_attribute("data-appeal-id") for e in view.css("tr[data-appeal-id]")]
    view.shot("10-org-view")
    if earlier["id"] in rows or set(rows) != {aid}:
        raise Failed(f"/org of {org!r} lists {rows}; only {aid} is routed there")
    page_text = view.d.find_element(view.By.TAG_NAME, "body").text
    if fields["organisation"][1] not in page_text or org in page_text:
        raise Failed(f"/org does not name the organisation {fields['organisation'][1]!r} "
                     f"(or shows its id {org!r})")
    if view.status("/board") != 403:
        raise Failed("the organisation's session opens /board")
    ok(f"the organisation account ({org!r}) sees only its application at /org, named "
       f"{fields['organisation'][1]!r} "
       f"(not the earlier one, routed to {other_org[0]!r}); /board is 403 for it")
    return 0


def hold_and_transfer_to_organisation(api, out, target, used, sipps, phone, trunk, desk, board,
                                      choices, orgs, config_dir):
    """op1's call from benefits ended without a disposition: op1 is held (paused, «Поствызывная
    обработка») and a second caller waiting in benefits is not offered to op1 for longer than
    the wrap-up; the disposition saved on the desk resumes op1, whose phone then rings with the
    second caller; op1 answers and the desk transfers that caller to an organisation: the
    trunk's far end receives the INVITE to the organisation's phone."""
    until("op1 held after the call (paused with the hold's reason)",
          lambda: api.operator("op1").get("pause_reason") == HOLD_REASON, 10)
    desk.one("the hold notice on the desk", "#disposition-hold")
    desk.shot("6b-desk-disposition-hold", "#disposition-hold")
    ok(f"the call ended without a disposition: op1 paused «{HOLD_REASON}» (in wrap-up first), "
       f"the desk says so")

    offers = phone.log().count("offered ")
    caller2 = Sipp(out, "caller2", target, free_block(7, used),
                   ["-sf", f"{HERE}/scenarios/workspace_caller.xml", "-s", "3758787",
                    "-key", "caller", CALLER2, "-m", "1",
                    "-cid_str", f"{CID_PREFIX}call2-%u-%p@%s"], 120)
    sipps.append(caller2)
    board.one("the second caller waiting in benefits",
              'section[data-queue="benefits"] [data-waiting-appeal]', 20)
    queues = tomllib.load(open(os.path.join(config_dir, "queues.toml"), "rb"))["queue"]
    wrap = next(q for q in queues if q["name"] == "benefits").get("wrap_up_seconds", 10)
    held_s = wrap + 3
    time.sleep(held_s)
    if phone.log().count("offered ") != offers or api.operator("op1").get("pause_reason") != HOLD_REASON:
        raise Failed("op1 was offered the second caller while the disposition was missing")
    desk.attr_is("op1 paused after the wrap-up", "#desk-state", "data-state", "paused", 5)
    board_offers(board, "op1", ["Снять паузу", "Вывести"], "held, by the live events", 5)
    board.shot("6c-board-caller2-waits-op1-held", 'section[data-queue="benefits"]')
    ok(f"the second caller waited {held_s} s (wrap-up {wrap} s) and op1's phone got no INVITE")

    fill(desk, "the appeal form's disposition", 'form#appeal-form [name="disposition"]',
         choices["disposition"])
    until("op1 offered the second caller after the disposition",
          lambda: phone.log().count("offered ") > offers, 15)
    until("op1 answering the second caller", lambda: phone.log().count("answered ") > offers, 15)
    desk.attr_is("op1 on the second call", "#desk-state", "data-state", "on_call", 10)
    ok("the disposition saved on the desk resumed op1; the second caller's INVITE reached op1's "
       "phone and op1 answered")

    org_id, org_name = choices["organisation"]
    org = next(o for o in orgs if o["id"] == org_id)
    want = "".join(c for c in org.get("phone", "") if c.isdigit() or c == "+")
    from selenium.webdriver.support.ui import Select
    Select(desk.one("the organisation to transfer to", "#transfer-org")).select_by_value(org_id)
    desk.one("the organisation transfer button", f'#btn-transfer-org[data-transfer-organisation="{org_id}"]')
    desk.shot("6d-desk-transfer-to-organisation", "#transfer")
    desk.one("the organisation transfer button", "#btn-transfer-org").click()
    got = until("the INVITE to the organisation's phone at the trunk",
                lambda: re.search(r"organisation called \[?INVITE sip:([+0-9]+)@", trunk.log()), 15, 0.2)
    if got.group(1) != want:
        raise Failed(f"the trunk got an INVITE to {got.group(1)}, {org_name!r}'s phone is {want}")
    until("op1's phone left the second call", lambda: phone.log().count("left the call") >= 2, 10)

    def moved():
        got = api.ok("GET", f"/api/v1/appeals?caller={CALLER2.lstrip('+')}")["appeals"]
        a = api.ok("GET", f"/api/v1/appeals/{got[0]['id']}") if got else {"events": []}
        return next((e for e in a["events"] if e["kind"] == "transferred"
                     and (e.get("data") or {}).get("kind") == "number"), None)
    event = until("the second appeal's transferred event (kind number)", moved, 10, 0.3)
    if (event.get("data") or {}).get("target") != want:
        raise Failed(f"the second appeal's transfer went to {event.get('data')}, not {want}")
    ok(f"the desk's organisation transfer: the trunk received INVITE sip:{want}@… "
       f"({org_name}, organisations.toml phone) and answered")


def main():
    a = sys.argv[1:]
    try:
        if len(a) == 2 and a[0] == "config":
            configure(a[1])
            return 0
        if len(a) in (7, 8) and a[0] == "run" and (len(a) == 7 or a[7] == "--sip-only"):
            return run(*a[1:7], sip_only=len(a) == 8)
    except Failed as e:
        print(f"FAIL workspace ({e})", flush=True)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
