"""Debian's chromium through chromium-driver (python3-selenium), headless, with the flags that
work on these machines and a profile of its own (so each driver has its own session cookie).
Shared by login_chromium.py, report_page_chromium.py and workspace_chromium.py; csp_refusals
reads what the policy refused from the console."""
import os
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", f"--window-size={width},{height}", "--lang=ru-RU",
              f"--user-data-dir={tempfile.mkdtemp(prefix='hotline-chromium-')}"):
        opts.add_argument(a)
    # a Russian user's browser: Accept-Language and the locale the date inputs are drawn in
    # (headless Chromium takes the locale from the environment, not from --lang alone)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "ru-RU,ru"})
    # the console, for what the Content-Security-Policy refused (csp_refusals)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = dict(os.environ, LANG="ru_RU.UTF-8", LANGUAGE="ru_RU:ru", LC_ALL="ru_RU.UTF-8")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver", env=env), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def csp_refusals(driver):
    """What the pages' Content-Security-Policy refused since the last call, as the browser's
    console says it (a script, a style or a connection the daemon's policy does not allow)."""
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Content-Security-Policy" in e["message"]]
