"""The admin console in a real browser: Debian's headless Chromium, driven through WebDriver
(selenium and chromedriver), against `tally serve` over generated demo traffic.

Every number a card shows is compared with the API's JSON for the same query, where the test
works the query out itself from the range's documented meaning (docs/console.md), not from the
page. It changes range, comparison, zone, filter and breakdown through the controls and checks the
URL and the numbers after each; goes back; reads an API error off the page; signs in with a token;
runs axe-core; takes the screenshots in docs/; and prints the budgets (written into
bench/RESULTS.md, never asserted).

Run by `make test` after the Rust tests (which build the tally binary it starts): TALLY_BIN names
the binary.
"""

import base64
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import secrets
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TALLY = os.environ.get("TALLY_BIN") or os.path.join(ROOT, "target", "debug", "tally")
REPORTING_TZ = "Asia/Seoul"
TOKEN = "console-test-token"
SIGNED_IN_TOKEN = "token-from-the-provider"
METRICS = ["average_order_value", "average_price", "content_views", "purchases", "revenue", "sign_ins",
           "visitors"]


def start_server(data, *extra_env):
    env = dict(os.environ, TALLY_DATA_DIR=data, TALLY_REPORTING_TZ=REPORTING_TZ, RUST_LOG="warn")
    env.pop("TALLY_API_TOKEN", None)
    for kv in extra_env:
        k, v = kv.split("=", 1)
        env[k] = v
    proc = subprocess.Popen([TALLY, "serve", "--addr", "127.0.0.1:0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = re.search(r"console on (http://[0-9.:]+)/", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("tally serve did not start: " + proc.stderr.read())


def start_provider():
    """A minimal OpenID Connect provider: /authorize hands out a code for the PKCE challenge and
    redirects back; /token gives SIGNED_IN_TOKEN only for the matching code verifier. Returns the
    server and the list of token exchanges (True when the verifier matched)."""
    codes, exchanges = {}, []

    class Provider(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            if url.path != "/authorize" or q.get("response_type") != "code" or q.get("client_id") != "console" \
                    or q.get("code_challenge_method") != "S256" or not q.get("state"):
                self.send_error(400, "not an authorization-code request with PKCE")
                return
            code = secrets.token_urlsafe(12)
            codes[code] = (q["code_challenge"], q["redirect_uri"])
            self.send_response(302)
            self.send_header("Location", q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q["state"]}))
            self.end_headers()

        def do_POST(self):
            form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            challenge, redirect = codes.pop(form.get("code"), (None, None))
            verifier = form.get("code_verifier", "").encode()
            expected = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            ok = (self.path == "/token" and form.get("grant_type") == "authorization_code"
                  and challenge == expected and redirect == form.get("redirect_uri"))
            exchanges.append(ok)
            body = json.dumps({"access_token": SIGNED_IN_TOKEN, "token_type": "Bearer", "expires_in": 3600}
                              if ok else {"error": "invalid_grant"}).encode()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, exchanges


def run(*args, data):
    env = dict(os.environ, TALLY_DATA_DIR=data, TALLY_REPORTING_TZ=REPORTING_TZ)
    subprocess.run([TALLY, *args], env=env, check=True, stdout=subprocess.DEVNULL)


def api(base, path, params=None, token=None):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read(), parse_float=Decimal)


def expected_range(preset, tz, custom=None):
    """[from, to) as dates in `tz` for a range preset, as docs/console.md defines them."""
    today = datetime.now(ZoneInfo(tz)).date()
    first = today.replace(day=1)
    last_month = (first - timedelta(days=1)).replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    ranges = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "last_7_days": (today - timedelta(days=7), today),
        "last_30_days": (today - timedelta(days=30), today),
        "last_90_days": (today - timedelta(days=90), today),
        "this_month": (first, next_month),
        "last_month": (last_month, first),
    }
    if preset == "custom":
        return custom[0], custom[1] + timedelta(days=1)
    return ranges[preset]


def shown_number(text):
    """A number as the page shows it in en-US (grouping commas, an approximate mark); None for the
    dash a ratio without a value shows."""
    text = text.replace(",", "").replace("≈", "").strip()
    return None if text == "–" else Decimal(text)


def rounded(value, places):
    if value is None:
        return None
    q = Decimal(1).scaleb(-places)
    return Decimal(value).quantize(q, rounding=ROUND_HALF_UP)


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        data = os.path.join(cls.tmp.name, "data")
        events = os.path.join(cls.tmp.name, "events.ndjson")
        # Three weeks up to now: presets up to "last 7 days" have both sides; longer ones run out.
        run("generate", "--days", "21", "--events-per-day", "1200", "--users", "300", "--seed", "11",
            "--out", events, data=data)
        run("ingest", events, data=data)
        run("rollup", data=data)
        cls.server, cls.base = start_server(data)
        cls.locked, cls.locked_base = start_server(data, "TALLY_API_TOKEN=" + TOKEN)
        cls.provider, cls.exchanges = start_provider()
        idp = f"http://127.0.0.1:{cls.provider.server_address[1]}"
        cls.signed, cls.signed_base = start_server(
            data, "TALLY_API_TOKEN=" + SIGNED_IN_TOKEN, "TALLY_OIDC_AUTHORIZE_URL=" + idp + "/authorize",
            "TALLY_OIDC_TOKEN_URL=" + idp + "/token", "TALLY_OIDC_CLIENT_ID=console")
        cls.downloads = os.path.join(cls.tmp.name, "downloads")
        os.makedirs(cls.downloads)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--lang=en-US",
                    "--window-size=1280,1000", "--user-data-dir=" + os.path.join(cls.tmp.name, "profile")]:
            options.add_argument(arg)
        options.add_experimental_option("prefs", {"intl.accept_languages": "en-US"})
        cls.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        cls.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": cls.downloads})
        cls.seen = (None, 0)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        for p in (cls.server, cls.locked, cls.signed):
            p.terminate()
            p.wait()
        cls.provider.shutdown()
        cls.tmp.cleanup()

    # ---- helpers ---------------------------------------------------------------------------

    def open(self, query="", base=None):
        self.driver.get((base or self.base) + "/" + query)
        return self.settled()

    def settled(self):
        """Waits for the page to finish drawing a new state (cards, breakdown, filter values): a
        later drawing in the same document, or any in a new one."""
        before = self.seen

        def done(d):
            origin, ready, settled = d.execute_script(
                "return [performance.timeOrigin, document.body.dataset.ready || '', document.body.dataset.settled || '']")
            fresh = origin != before[0] or (settled and int(settled) > before[1])
            return settled and settled == ready and fresh and (origin, int(settled))

        try:
            type(self).seen = WebDriverWait(self.driver, 30).until(done)
        except TimeoutException:
            self.fail("the console did not settle; message: " + self.message())

    def message(self):
        m = self.driver.find_element(By.ID, "message")
        return m.text if m.is_displayed() else ""

    def url_params(self):
        return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.driver.current_url).query))

    def choose(self, element_id, value):
        Select(self.driver.find_element(By.ID, element_id)).select_by_value(value)
        self.settled()

    def check_cards(self, preset="last_7_days", tz=REPORTING_TZ, compare=None, filters=None,
                    custom=None, base=None, token=None):
        """Every card equals the API's answer for the query the test works out itself."""
        frm, to = expected_range(preset, tz, custom)
        checked = 0
        catalog = api(base or self.base, "/v1/metrics", token=token)
        for metric in catalog["metrics"]:
            name = metric["name"]
            card = self.driver.find_element(By.CSS_SELECTOR, f"li.card[data-metric='{name}']")
            for junk in ["null", "undefined", "NaN", "[object"]:
                self.assertNotIn(junk, card.text, f"{name} card shows {junk!r}")
            applicable = {k: v for k, v in (filters or {}).items() if k in metric["dimensions"]}
            if len(applicable) < len(filters or {}):
                self.assertIn("Not split by", card.text, name)
                self.assertEqual(card.find_elements(By.CSS_SELECTOR, "[data-field]"), [], name)
                continue
            params = {"from": frm.isoformat(), "to": to.isoformat(), "tz": tz, **applicable}
            if compare:
                params["compare"] = compare
            want = api(base or self.base, "/v1/metrics/" + name, params, token=token)

            def field(f):
                return card.find_element(By.CSS_SELECTOR, f"[data-field='{f}']").text

            for f in ["current_total", "previous_total", "total"]:
                self.assertEqual(shown_number(field(f)), rounded(want[f], 2), f"{name} {f} for {params}")
            rate = want["change_rate"]
            if rate is None:
                self.assertEqual(field("change_rate"), "no comparison value", name)
            else:
                self.assertEqual(Decimal(field("change_rate").rstrip("%").replace("+", "")), rounded(rate, 1),
                                 f"{name} change_rate for {params}")
                direction = card.find_element(By.CSS_SELECTOR, ".change").get_attribute("data-direction")
                self.assertEqual(direction, "up" if rate > 0 else "down" if rate < 0 else "flat", name)
                # The direction is in words too, not in colour alone.
                words = card.find_element(By.CSS_SELECTOR, ".change .visually-hidden").get_attribute("textContent")
                self.assertIn(words.strip(), ["up", "down", "unchanged"], name)
            self.assertEqual(bool(card.find_elements(By.CSS_SELECTOR, ".approx")), want["approximate"], name)
            checked += 1
        self.assertGreater(checked, 0, "at least one card was compared")
        return checked

    # ---- tests -----------------------------------------------------------------------------

    def test_cards_equal_the_api_and_the_trend_is_drawn(self):
        self.open("?range=last_7_days")
        self.assertEqual(self.check_cards(), len(METRICS))
        # The first metric is in focus: its trend and its table.
        want = api(self.base, "/v1/metrics/content_views", {
            "from": expected_range("last_7_days", REPORTING_TZ)[0].isoformat(),
            "to": expected_range("last_7_days", REPORTING_TZ)[1].isoformat(), "tz": REPORTING_TZ})
        self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, "#chart canvas"), "a chart is drawn")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#series tbody tr")
        self.assertEqual(len(rows), max(len(want["series"]), len(want["previous_series"])))
        label = self.driver.find_element(By.ID, "range-label").text
        self.assertIn(" vs ", label)
        self.assertIn(REPORTING_TZ, label)
        self.assertIn("Data up to", self.driver.find_element(By.ID, "as-of").text)

    def test_controls_change_the_url_and_the_numbers_and_back_restores_them(self):
        self.open("?range=last_7_days")
        self.choose("preset", "last_30_days")
        self.assertEqual(self.url_params()["range"], "last_30_days")
        self.check_cards("last_30_days")

        self.choose("compare", "previous_year")
        self.assertEqual(self.url_params()["compare"], "previous_year")
        self.check_cards("last_30_days", compare="previous_year")
        self.assertIn("a year earlier", self.driver.find_element(By.ID, "range-label").text)
        self.choose("compare", "previous_period")
        self.assertNotIn("compare", self.url_params())

        self.choose("preset", "yesterday")
        self.choose("tz", "UTC")
        self.assertEqual(self.url_params()["tz"], "UTC")
        self.check_cards("yesterday", tz="UTC")

        # A filter's choices are the values seen in the range, largest first, of the metric in
        # focus (the first of the catalog, average_order_value, whose values are its numerator's).
        values = api(self.base, "/v1/metrics/average_order_value/dimensions/country", {
            "from": expected_range("yesterday", "UTC")[0].isoformat(),
            "to": expected_range("yesterday", "UTC")[1].isoformat(), "tz": "UTC", "limit": "100"})
        options = [o.get_attribute("value") for o in
                   Select(self.driver.find_element(By.ID, "filter-country")).options][1:]
        self.assertEqual(options, [v["value"] for v in values["values"]])
        top = options[0]
        self.choose("filter-country", top)
        self.assertEqual(self.url_params()["f.country"], top)
        self.check_cards("yesterday", tz="UTC", filters={"country": top})

        # Focus sign-ins, break it down by browser, sort by change.
        self.driver.find_element(By.CSS_SELECTOR, "li.card[data-metric='sign_ins'] h3 a").click()
        self.settled()
        self.assertEqual(self.url_params()["metric"], "sign_ins")
        self.choose("group-by", "browser")
        self.assertEqual(self.url_params()["group_by"], "browser")
        frm, to = expected_range("yesterday", "UTC")
        want = api(self.base, "/v1/metrics/sign_ins", {"from": frm.isoformat(), "to": to.isoformat(), "tz": "UTC",
                                                       "country": top, "group_by": "browser", "limit": "100"})
        rows = self.breakdown()
        self.assertEqual(rows, [(g["group"], rounded(g["current_total"], 2)) for g in want["groups"]])
        self.assertGreater(len(rows), 1, "the breakdown has several groups")
        header = self.driver.find_element(By.CSS_SELECTOR, "#breakdown th[data-key='group'] button")
        header.click()
        self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, "#breakdown th[data-key='group']")
                         .get_attribute("aria-sort"), "ascending")
        self.assertEqual([r[0] for r in self.breakdown()], sorted(r[0] for r in rows))

        # The downloads carry the API's numbers.
        self.driver.find_element(By.ID, "breakdown-csv").click()
        csv_rows = self.downloaded("sign_ins-by-browser.csv")
        self.assertEqual(csv_rows[0], ["browser", "current_total", "previous_total", "change_rate"])
        self.assertEqual(sorted((r[0], Decimal(r[1])) for r in csv_rows[1:]),
                         sorted((g["group"], g["current_total"]) for g in want["groups"]))
        self.driver.find_element(By.ID, "series-csv").click()
        csv_rows = self.downloaded("sign_ins-trend.csv")
        self.assertEqual([(r[0], Decimal(r[1])) for r in csv_rows[1:]],
                         [(p["start"], p["value"]) for p in want["series"]])

        # Back: the state before the breakdown, then before the focus.
        self.driver.back()
        self.settled()
        self.assertNotIn("group_by", self.url_params())
        self.assertFalse(self.driver.find_element(By.ID, "breakdown-box").is_displayed())
        self.driver.back()
        self.settled()
        self.assertNotIn("metric", self.url_params())
        self.assertEqual(self.url_params()["f.country"], top)
        self.check_cards("yesterday", tz="UTC", filters={"country": top})
        self.driver.back()
        self.settled()
        self.assertNotIn("f.country", self.url_params())
        self.check_cards("yesterday", tz="UTC")

    def breakdown(self):
        out = []
        for tr in self.driver.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr"):
            group = tr.find_element(By.CSS_SELECTOR, "th").text
            out.append((None if group == "(none)" else group, shown_number(tr.find_elements(By.CSS_SELECTOR, "td")[0].text)))
        return out

    def downloaded(self, name):
        path = os.path.join(self.downloads, name)
        for _ in range(100):
            if os.path.exists(path) and not os.path.exists(path + ".crdownload"):
                break
            time.sleep(0.1)
        with open(path) as f:
            rows = [line.split(",") for line in f.read().splitlines()]
        os.remove(path)
        return rows

    def test_a_custom_range_and_an_api_error_show_on_the_page(self):
        today = datetime.now(ZoneInfo(REPORTING_TZ)).date()
        start = today - timedelta(days=10)
        end = today - timedelta(days=4)
        self.open(f"?range=custom&from={start}&to={end}")
        self.check_cards("custom", custom=(start, end))
        self.assertEqual(self.message(), "")
        # A range longer than the API allows: the API's own message is shown.
        self.open(f"?range=custom&from=2020-01-01&to={end}")
        self.assertIn("the range may span at most", self.message())
        card = self.driver.find_element(By.CSS_SELECTOR, "li.card[data-metric='revenue']")
        self.assertIn("Error: the range may span at most", card.text)

    def test_a_token_protected_api_asks_for_the_token_then_shows_the_numbers(self):
        self.driver.get(self.locked_base + "/?range=last_7_days")
        form = self.driver.find_element(By.ID, "token-form")
        WebDriverWait(self.driver, 20).until(lambda d: form.is_displayed())
        self.assertFalse(self.driver.find_element(By.ID, "numbers").is_displayed())
        self.driver.find_element(By.ID, "token").send_keys("wrong")
        form.find_element(By.CSS_SELECTOR, "button").click()
        WebDriverWait(self.driver, 20).until(lambda d: "bearer token" in self.message())
        self.assertTrue(form.is_displayed())
        self.driver.find_element(By.ID, "token").send_keys(TOKEN)
        form.find_element(By.CSS_SELECTOR, "button").click()
        self.settled()
        self.assertFalse(form.is_displayed())
        self.check_cards(base=self.locked_base, token=TOKEN)
        self.driver.execute_script("sessionStorage.clear()")

    def test_sign_in_with_the_provider_then_shows_the_numbers(self):
        self.driver.get(self.signed_base + "/?range=yesterday&metric=revenue")
        button = self.driver.find_element(By.ID, "sign-in-button")
        WebDriverWait(self.driver, 20).until(lambda d: button.is_displayed())
        self.assertFalse(self.driver.find_element(By.ID, "token-form").is_displayed())
        button.click()
        self.settled()
        self.assertEqual(self.exchanges, [True], "one token exchange, with the matching PKCE verifier")
        # Back on the view the admin left, without the code in the URL.
        self.assertEqual(self.url_params(), {"range": "yesterday", "metric": "revenue"})
        self.check_cards("yesterday", base=self.signed_base, token=SIGNED_IN_TOKEN)
        # A forged answer (a state this tab never sent) is refused.
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(self.signed_base + "/?code=stolen&state=forged")
        WebDriverWait(self.driver, 20).until(lambda d: "does not belong" in self.message())
        self.assertEqual(self.exchanges, [True], "no exchange for a forged answer")
        self.assertTrue(self.driver.find_element(By.ID, "sign-in-button").is_displayed())

    def test_no_serious_accessibility_violation(self):
        axe = os.path.join(ROOT, "console", "node_modules", "axe-core", "axe.min.js")
        with open(axe) as f:
            source = f.read()
        for query in ["?range=last_7_days", "?range=yesterday&metric=sign_ins&group_by=browser&f.country=KR"]:
            self.open(query)
            self.driver.execute_script(source)
            result = self.driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));")
            self.assertIsInstance(result, list, result)
            bad = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                   for v in result if v["impact"] in ("serious", "critical")]
            self.assertEqual(bad, [], query)
        # Every control has a label.
        for e in self.driver.find_elements(By.CSS_SELECTOR, "select, input"):
            if e.is_displayed():
                self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, f"label[for='{e.get_attribute('id')}']"),
                                e.get_attribute("id"))

    def test_screenshots_and_budgets(self):
        self.driver.set_window_size(1280, 1000)
        self.open("?range=last_7_days&metric=revenue&group_by=country")
        cards_ms = self.driver.execute_script(
            "const m = performance.getEntriesByName('tally:cards-drawn'); return m.length ? m[0].startTime : null")
        requests = self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        per_card = {m: sum(1 for r in requests if urllib.parse.urlparse(r).path == "/v1/metrics/" + m
                           and "group_by" not in r) for m in METRICS}
        self.assertEqual(set(per_card.values()), {1}, f"one API call per card: {per_card}")
        docs = os.path.join(ROOT, "docs")
        self.driver.save_screenshot(os.path.join(docs, "console-desktop.png"))
        self.driver.set_window_size(375, 812)
        self.open("?range=last_7_days&metric=revenue&group_by=country")
        width = self.driver.execute_script("return document.documentElement.scrollWidth")
        self.assertLessEqual(width, 375, "nothing overflows a 375 px screen")
        self.driver.save_screenshot(os.path.join(docs, "console-mobile.png"))
        self.driver.set_window_size(1280, 1000)

        sizes = {}
        for path in ["/", "/console/app.js", "/console/app.css", "/console/uPlot.min.js", "/console/uPlot.min.css"]:
            with urllib.request.urlopen(self.base + path) as r:
                body = r.read()
            sizes[path] = (len(body), len(gzip.compress(body, 9)))
        raw = sum(s[0] for s in sizes.values())
        packed = sum(s[1] for s in sizes.values())
        lines = [
            "| measure | figure | notes |",
            "| --- | --- | --- |",
            f"| console assets, gzip | {packed / 1024:.1f} KB | {raw / 1024:.1f} KB uncompressed; budget 150 KB; "
            + ", ".join(f"{p} {s[1] / 1024:.1f} KB" for p, s in sizes.items()) + " |",
            f"| cards drawn after navigation | {cards_ms:.0f} ms | localhost, debug build, 5 cards; budget 1 s |",
            f"| API calls per card | {max(per_card.values())} | budget: one |",
        ]
        print("\n".join(["", "console budgets (measured, not asserted):", *lines]), file=sys.stderr)
        write_results(lines)


def write_results(lines):
    """Replaces the console section of bench/RESULTS.md (between its markers)."""
    path = os.path.join(ROOT, "bench", "RESULTS.md")
    begin, end = "<!-- console:begin -->", "<!-- console:end -->"
    with open(path) as f:
        text = f.read()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    section = "\n".join([begin, "", "## console", "",
                         f"Measured by the browser test (`make test`, tests/console/test_console.py) on {stamp}, "
                         "headless Chromium on this machine; not asserted.", "", *lines, "", end])
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
