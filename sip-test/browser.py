"""Debian's chromium through chromium-driver (python3-selenium), headless, with the flags that
work on these machines and a profile of its own (so each driver has its own session cookie).
Shared by login_chromium.py and workspace_chromium.py."""
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", f"--window-size={width},{height}", "--lang=ru",
              f"--user-data-dir={tempfile.mkdtemp(prefix='hotline-chromium-')}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(30)
    return driver
