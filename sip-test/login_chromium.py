#!/usr/bin/env python3
"""The login form in headless Chromium (Debian's chromium + chromium-driver, driven by
Debian's python3-selenium; no browser download): op1 logs in and sees their name; op1's
session gets 403 on a supervisor route; five wrong passwords lock an account with the
message, and the right password is refused while it lasts. Screenshots into OUT.

Usage: login_chromium.py BASE_URL OUT_DIR
Prints PASS/FAIL lines; exits 1 on the first failure.
"""
import sys

from browser import chromium, csp_refusals
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, out = sys.argv[1].rstrip("/"), sys.argv[2]


def fail(what):
    print(f"FAIL login-chromium ({what})")
    sys.exit(1)


def ok(what):
    print(f"PASS login-chromium: {what}")


driver = chromium(1100, 800)
wait = WebDriverWait(driver, 15)


def login(user, password):
    driver.get(base + "/")
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    box = driver.find_element(By.ID, "login")
    box.clear()
    box.send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.form button[type=submit]").click()


def status_of(path):
    """The status of a same-origin fetch made by the page (with its session cookie)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status), e => done(-1));",
        path)


try:
    driver.get(base + "/")
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    labels = [l.text for l in driver.find_elements(By.TAG_NAME, "label")]
    if labels != ["Имя пользователя", "Пароль"]:
        fail(f"labels {labels}")
    driver.save_screenshot(f"{out}/1-login.png")

    # op1 logs in and sees their name
    login("op1", "op1-secret")
    who = wait.until(EC.presence_of_element_located((By.ID, "user-name")))
    if who.text != "Оператор 1":
        fail(f"the header shows {who.text!r}, not Оператор 1")
    role = driver.find_element(By.TAG_NAME, "body").get_attribute("data-role")
    if not driver.current_url.endswith("/desk") or role != "operator":
        fail(f"landing page: {driver.current_url!r}, role {role!r}")
    driver.save_screenshot(f"{out}/2-op1-logged-in.png")
    ok(f"op1 logged in through the form and sees {who.text!r} ({role})")

    # op1's session: their own state is fine, a supervisor's route is 403
    me = status_of("/api/v1/me")
    report = status_of("/api/v1/reports/daily")
    audit = status_of("/api/v1/audit")
    if (me, report, audit) != (200, 403, 403):
        fail(f"/api/v1/me {me}, /api/v1/reports/daily {report}, /api/v1/audit {audit}")
    driver.get(base + "/api/v1/reports/daily")
    driver.save_screenshot(f"{out}/3-op1-supervisor-route-403.png")
    if "may not use this route" not in driver.page_source:
        fail("the 403 answer's message is not shown")
    ok("op1's session: /api/v1/me 200, /api/v1/reports/daily 403, /api/v1/audit 403")

    # logout through the button
    driver.get(base + "/")
    wait.until(EC.presence_of_element_located((By.ID, "user-name")))
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    if status_of("/api/v1/me") != 401:
        fail("the session still works after logout")
    ok("logout ends the session (/api/v1/me 401)")

    # five wrong passwords lock the account, with the message
    for i in range(1, 6):
        login("op2", f"wrong-password-{i}")
        alert = wait.until(EC.presence_of_element_located((By.ID, "login-error"))).text
        if i < 5 and "Неверное имя пользователя или пароль" not in alert:
            fail(f"attempt {i}: {alert!r}")
        if i == 4:
            driver.save_screenshot(f"{out}/4-wrong-password.png")
    if "заблокирован" not in alert:
        fail(f"after five failures: {alert!r}")
    driver.save_screenshot(f"{out}/5-locked.png")
    login("op2", "op2-secret")
    alert = wait.until(EC.presence_of_element_located((By.ID, "login-error"))).text
    if "заблокирован" not in alert or driver.find_elements(By.ID, "user-name"):
        fail(f"the right password while locked: {alert!r}")
    driver.save_screenshot(f"{out}/6-locked-right-password.png")
    ok(f"five wrong passwords lock op2: {alert!r}; the right one is refused while locked")
    refused = csp_refusals(driver)
    if refused:
        fail(f"the Content-Security-Policy refused: {refused}")
    ok("the console: nothing refused by the Content-Security-Policy")
finally:
    driver.quit()
