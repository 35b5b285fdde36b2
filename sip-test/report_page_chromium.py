#!/usr/bin/env python3
"""The /reports page in headless Chromium (Debian's chromium + chromium-driver, driven by
Debian's python3-selenium), against the database report_chromium.sh filled:

- the supervisor signs in; at 1366×768 the page is in Russian (no English label anywhere on
  it) and its day view shows the figures of the database;
- the period picker is worked with the keyboard alone (Tab to the select, arrow keys, Enter):
  the ISO week, then the calendar month; the period line writes its dates дд.мм.гггг; the month's cards (calls, answered, abandoned,
  overdue) and its services, organisations, districts, lines and operators tables (calls,
  overdue per row, the names the configuration gives) are compared with the database;
- `?lang=en` shows it in English;
- screenshots into OUT: report-page-day.png, report-page-month.png (the first screen at
  1366×768), report-page-month-full.png (the whole page), report-page-en.png.

Usage: report_page_chromium.py BASE_URL OUT_DIR DB DAY TZ_OFFSET
Prints PASS/FAIL lines; exits 1 on the first failure.
"""
import datetime as dt
import sqlite3
import sys

from browser import chromium, csp_refusals
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, out, db, day, off = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]

# English words the page must not show unless ?lang=en (headings, columns, charts, picker).
ENGLISH = ["Calls", "Answered", "Abandoned", "Service level", "Overdue", "By line", "By service",
           "By organisation", "By district", "By day", "Calls by hour", "Period", "Week", "Month",
           "Show", "Export", "Printable", "No calls", "Avg wait", "Avg talk", "Other", "Operator",
           "Service", "District", "Organisation", "Report"]


def fail(what):
    print(f"FAIL report-chromium page ({what})")
    sys.exit(1)


def ok(what):
    print(f"PASS report-chromium page: {what}")


sign = -1 if off.startswith("-") else 1
digits = off.lstrip("+-").replace(":", "")
tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0)))
d = dt.date.fromisoformat(day)
month_first = d.replace(day=1)
month_next = (month_first + dt.timedelta(days=32)).replace(day=1)
week_first = d - dt.timedelta(days=d.weekday())


def ms(date):
    return int(dt.datetime.combine(date, dt.time(0), tz).timestamp() * 1000)


con = sqlite3.connect(db)
NOW = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)


def figures(start, end, extra="", args=()):
    r = con.execute(
        "SELECT COUNT(*), SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), "
        " SUM(CASE WHEN outcome = 'abandoned' AND answered_at IS NULL THEN 1 ELSE 0 END), "
        " SUM(CASE WHEN status NOT IN ('done', 'declined') AND due_at < ? THEN 1 ELSE 0 END) "
        f"FROM appeals WHERE arrived_at >= ? AND arrived_at < ?{extra}",
        (NOW, start, end, *args)).fetchone()
    return {"calls": str(r[0]), "answered": str(r[1] or 0), "abandoned": str(r[2] or 0),
            "overdue": str(r[3] or 0)}


def names(file, table, column, key="id"):
    """The Russian names of the shipped configuration, read from the config the daemon loaded."""
    import tomllib
    with open(f"config/{file}.toml", "rb") as f:
        return {e[key]: e[column] for e in tomllib.load(f)[table]}


driver = chromium(1366, 768)
wait = WebDriverWait(driver, 20)


def login(user, password):
    driver.get(base + "/")
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    driver.find_element(By.ID, "login").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.form button[type=submit]").click()
    wait.until(lambda d: "/board" in d.current_url or "/desk" in d.current_url)


def main_text():
    return driver.find_element(By.TAG_NAME, "body").text


def card(figure):
    return driver.find_element(
        By.CSS_SELECTOR, f".figure-card[data-figure='{figure}'] .v").text.strip()


def cell(group, key, figure):
    found = driver.find_elements(
        By.CSS_SELECTOR, f"table[data-group='{group}'] tr[data-key='{key}'] td[data-figure='{figure}']")
    return found[0].text.strip() if found else None


def row_name(group, key):
    found = driver.find_elements(
        By.CSS_SELECTOR, f"table[data-group='{group}'] tr[data-key='{key}'] td")
    return found[0].text.strip() if found else None


def no_english(where):
    text = main_text()
    left = [w for w in ENGLISH if w in text]
    if left:
        fail(f"{where}: English on the Russian page: {left}")


try:
    login("supervisor", "supervisor-secret")
    driver.get(f"{base}/reports?day={day}")
    wait.until(EC.presence_of_element_located((By.ID, "report-cards")))
    if driver.find_element(By.TAG_NAME, "h1").text != "Отчёт горячей линии":
        fail(f"title {driver.find_element(By.TAG_NAME, 'h1').text!r}")
    no_english("day view")
    want = figures(ms(d), ms(d + dt.timedelta(days=1)))
    for k, v in want.items():
        if card(k) != v:
            fail(f"day card {k}: page {card(k)!r}, database {v!r}")
    driver.save_screenshot(f"{out}/report-page-day.png")
    ok(f"the day in Russian, cards as the database: {want}")

    # The date field is дд.мм.гггг text as in the registry (not the browser's date input,
    # which shows US order in an en-US browser like this one); a date typed so is taken.
    field = driver.find_element(By.ID, "r-day")
    shown = d.strftime("%d.%m.%Y")
    if field.get_attribute("type") != "text" or field.get_attribute("value") != shown \
            or field.get_attribute("placeholder") != "дд.мм.гггг":
        fail(f"the date field: type {field.get_attribute('type')!r}, value "
             f"{field.get_attribute('value')!r}, placeholder {field.get_attribute('placeholder')!r}")
    field.clear()
    field.send_keys(shown, Keys.ENTER)
    wait.until(lambda dr: f"day={shown}" in dr.current_url)
    wait.until(EC.presence_of_element_located((By.ID, "report-cards")))
    if driver.find_elements(By.CSS_SELECTOR, "p.alert"):
        fail(f"the typed date {shown} was refused")
    for k, v in want.items():
        if card(k) != v:
            fail(f"day card {k} after typing {shown}: page {card(k)!r}, database {v!r}")
    period = driver.find_element(By.ID, "report-period").text
    if period != f"День: {shown}":
        fail(f"day period {period!r}, want 'День: {shown}' (дд.мм.гггг, as the rest of the pages)")
    ok(f"the date field shows {shown} (дд.мм.гггг) and takes it typed with the keyboard; "
       f"the period line «{period}»")

    # The picker with the keyboard alone: focus the select, ArrowDown → the next period,
    # Tab through the date's fields to the button, Enter.
    def pick_next_range():
        select = driver.find_element(By.ID, "r-range")
        driver.execute_script("arguments[0].focus()", select)
        if driver.switch_to.active_element != select:
            fail("the period select does not take the focus")
        select.send_keys(Keys.ARROW_DOWN)
        tabs = 0
        while driver.switch_to.active_element.text != "Показать":
            driver.switch_to.active_element.send_keys(Keys.TAB)
            tabs += 1
            if tabs > 6:
                fail("Tab from the period select never reaches the button")
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        return tabs

    tabs = pick_next_range()
    wait.until(lambda dr: "range=week" in dr.current_url)
    period = driver.find_element(By.ID, "report-period").text
    # the period line writes dates as the rest of the pages: дд.мм.гггг
    week_last = week_first + dt.timedelta(days=6)
    want_period = f"Неделя: {week_first:%d.%m.%Y} – {week_last:%d.%m.%Y}"
    if period != want_period:
        fail(f"week period {period!r}, want {want_period!r}")
    want = figures(ms(week_first), ms(week_first + dt.timedelta(days=7)))
    if card("calls") != want["calls"] or card("overdue") != want["overdue"]:
        fail(f"week cards calls {card('calls')} overdue {card('overdue')}, database {want}")
    ok(f"keyboard: select, ArrowDown, {tabs} × Tab, Enter gives the ISO week {want_period}")

    pick_next_range()
    wait.until(lambda dr: "range=month" in dr.current_url)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "svg[data-chart='by_day']")))
    no_english("month view")
    period = driver.find_element(By.ID, "report-period").text
    month_last = month_next - dt.timedelta(days=1)
    if period != f"Месяц: {month_first:%d.%m.%Y} – {month_last:%d.%m.%Y}":
        fail(f"month period {period!r}")
    start, end = ms(month_first), ms(month_next)
    want = figures(start, end)
    for k, v in want.items():
        if card(k) != v:
            fail(f"month card {k}: page {card(k)!r}, database {v!r}")
    if int(want["overdue"]) == 0:
        fail("no overdue appeal in the month: the generated data is missing")
    dirs = {"service": names("services", "service", "title"),
            "district": names("districts", "district", "name"),
            "organisation": names("organisations", "organisation", "name"),
            "line": names("lines", "line", "name"),
            "operator": names("operators", "operator", "name", key="login")}
    checked = 0
    for group, labels in dirs.items():
        keys = [r[0] for r in con.execute(
            f"SELECT DISTINCT {group} FROM appeals WHERE arrived_at >= ? AND arrived_at < ? "
            f"AND {group} IS NOT NULL", (start, end))]
        if not keys:
            fail(f"no {group} in the month's appeals")
        for key in keys:
            w = figures(start, end, f" AND {group} = ?", (key,))
            for fig in ("calls", "overdue"):
                if cell(group, key, fig) != w[fig]:
                    fail(f"{group} {key} {fig}: page {cell(group, key, fig)!r}, database {w[fig]!r}")
                checked += 1
            if row_name(group, key) != labels[key]:
                fail(f"{group} {key} is named {row_name(group, key)!r}, not {labels[key]!r}")
        if group in ("line", "operator"):
            continue  # every appeal has a line; the operators' table lists those who answered
        none = figures(start, end, f" AND {group} IS NULL")
        if none["calls"] != "0" and cell(group, "", "calls") != none["calls"]:
            fail(f"{group} without one: page {cell(group, '', 'calls')!r}, database {none['calls']!r}")
    # readable at 1366×768: nothing wider than the window
    wide = driver.execute_script(
        "return document.documentElement.scrollWidth > window.innerWidth")
    if wide:
        fail("the month view scrolls sideways at 1366×768")
    driver.save_screenshot(f"{out}/report-page-month.png")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, min(height + 120, 9000))
    driver.save_screenshot(f"{out}/report-page-month-full.png")
    driver.set_window_size(1366, 768)
    ok(f"the month {month_first} – {month_next - dt.timedelta(days=1)}: cards {want}, "
       f"{checked} service/organisation/district/line/operator figures as the database, their names")

    csv_link = driver.find_element(By.ID, "export-report-csv").get_attribute("href")
    csv = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done('ERR ' + e));",
        csv_link)
    if not csv.startswith("день,группа,ключ,название,"):
        fail(f"the CSV link gives {csv[:80]!r}")
    ok("the CSV link gives the month in Russian")

    driver.get(f"{base}/reports?range=month&day={day}&lang=en")
    wait.until(EC.presence_of_element_located((By.ID, "report-cards")))
    text = main_text()
    for w in ["Hotline call report", "Overdue", "By service", "By district", "Month"]:
        if w not in text:
            fail(f"?lang=en: {w!r} not on the page")
    driver.save_screenshot(f"{out}/report-page-en.png")
    driver.get(f"{base}/reports?lang=ru")
    ok("?lang=en shows it in English")

    # Page after page, each with its live stream: a page left for another is kept frozen by
    # the browser with its stream, and six streams would block the seventh page for good
    # unless the page closes its stream when it is hidden.
    for i in range(8):
        driver.get(f"{base}/reports?range=day&day={day}&n={i}")
        wait.until(EC.presence_of_element_located((By.ID, "report-cards")))
        wait.until(lambda dr: dr.find_element(By.ID, "live-status").get_attribute("data-live") == "up")
    ok("eight pages in a row each load with their live stream up")
    refused = csp_refusals(driver)
    if refused:
        fail(f"the Content-Security-Policy refused: {refused}")
    ok("the console: nothing refused by the Content-Security-Policy")
finally:
    driver.quit()
