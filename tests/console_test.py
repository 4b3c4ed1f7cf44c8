"""The web console in a real browser: Debian's headless Chromium, driven by
Selenium through the system's chromedriver, against the running stack
(the local gateway at TOLLGATE_URL, the development issuer's sign-in).

alice signs in, creates a token with a rate limit, copies its secret (read
back from the clipboard), and the test validates it; the detail page shows
the use counted and the window; a roll with grace shows both secrets'
state; a disable is refused; a delete is confirmed and the token is gone. A
bad field's 400 is shown beside the field. bob signs in and never sees
alice's tokens. Identities alike. Every page is checked for JavaScript
errors and Content-Security-Policy violations (each one fails the test),
for labelled controls, and at phone width for no sideways scrolling; a
screenshot of each main page is saved under .run/.

usage: console_test.py   (TOLLGATE_URL, RUN_DIR from make test)
"""
import json
import os
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ.get("TOLLGATE_URL", "http://127.0.0.1:3000")
SHOTS = os.environ.get("RUN_DIR", ".run")
BUDGET_BYTES = 150 * 1024
# Records CSP violations from the first script of every page (a script the
# browser runs itself: no CSP applies to it).
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e =>
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def record_minted(token):
    """For the secret scan at the end of make test: no log or item may hold it."""
    path = os.environ.get("TOLLGATE_MINTED_FILE")
    if path:
        with open(path, "a") as f:
            f.write(token + "\n")


def validate(token, **extra):
    body = json.dumps({"token": token, **extra}).encode()
    req = urllib.request.Request(f"{BASE}/validate", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='console-chromium-')}",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_VIOLATIONS})
    driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": BASE, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    return driver


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.driver = browser()
        cls.wait = WebDriverWait(cls.driver, 30)
        cls.figures = {}

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        for name, value in cls.figures.items():
            print(f"{name} {value}")

    # ---- helpers -------------------------------------------------------

    def check_page(self, name):
        """No JavaScript error, no CSP violation, every control labelled,
        and a screenshot, for the page as it stands."""
        d = self.driver
        errors = [e for e in d.get_log("browser")
                  if e["level"] == "SEVERE" and e.get("source") != "network"]
        self.assertEqual(errors, [], f"{name}: JavaScript errors")
        violations = d.execute_script("return window.__violations || []")
        self.assertEqual(violations, [], f"{name}: Content-Security-Policy violations")
        unlabelled = d.execute_script("""
            return [...document.querySelectorAll('main input, main select, main textarea')]
              .filter(c => c.type !== 'hidden' && c.labels.length === 0).map(c => c.name)""")
        self.assertEqual(unlabelled, [], f"{name}: controls without a label")
        d.save_screenshot(os.path.join(SHOTS, f"console-{name}.png"))

    def ready(self, page):
        """Waits until the console has rendered `page` (a route, or "sign-in")."""
        # A script, not an element reference: the page may be replaced meanwhile.
        self.wait.until(lambda d: d.execute_script(
            "return document.body && document.body.dataset.ready") == page)

    def unready(self):
        """Before an action that changes the page, so `ready` waits for the new one."""
        self.driver.execute_script("document.body.removeAttribute('data-ready')")

    def go(self, hash_):
        self.unready()
        self.driver.execute_script(f"location.hash = {json.dumps(hash_)}")
        self.ready(hash_)

    def sign_in(self, name):
        d = self.driver
        d.get(f"{BASE}/dev-issuer/logout")
        # Whoever signed in before (a test that failed before signing out)
        # leaves no issuer session and no tab state behind.
        d.delete_all_cookies()
        d.execute_script("sessionStorage.clear()")
        d.get(f"{BASE}/console")
        self.ready("sign-in")
        d.find_element(By.ID, "sign-in").click()
        field = self.wait.until(EC.presence_of_element_located((By.ID, "username")))
        field.send_keys(name, Keys.ENTER)
        self.ready("#/tokens")
        self.assertEqual(d.find_element(By.ID, "who").text, name)

    def sign_out(self):
        self.driver.find_element(By.ID, "sign-out").click()
        self.ready("sign-in")

    def fill(self, form, values):
        for name, value in values.items():
            el = form.find_element(By.NAME, name)
            el.clear()
            el.send_keys(str(value))

    def submit_token(self, values):
        self.go("#/tokens/new")
        form = self.driver.find_element(By.CSS_SELECTOR, "main form")
        self.fill(form, values)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        return form

    def detail_id(self):
        return self.driver.execute_script("return location.hash").split("/")[2]

    def fact(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector).text

    # ---- the walk-through ----------------------------------------------

    def test_a_budget_and_first_page(self):
        d = self.driver
        total = 0
        for name in ("", "/style.css", "/app.js", "/auth.js", "/api.js", "/ui.js",
                     "/limits.js", "/tokens.js", "/identities.js"):
            with urllib.request.urlopen(f"{BASE}/console{name}", timeout=30) as r:
                total += len(r.read())
                csp = r.headers["content-security-policy"]
                self.assertIn("script-src 'self';", csp)
                self.assertNotIn("unsafe", csp)
                self.assertEqual(r.headers["x-frame-options"], "DENY")
        self.figures["console_assets_bytes"] = total
        self.assertLessEqual(total, BUDGET_BYTES)
        d.get(f"{BASE}/console")
        self.ready("sign-in")
        interactive = d.execute_script(
            "return performance.getEntriesByName('tollgate-ready sign-in')[0].startTime")
        self.figures["console_first_page_interactive_ms"] = round(interactive)
        self.check_page("sign-in")

    def test_b_alice_manages_a_token_from_creation_to_deletion(self):
        d = self.driver
        alice = "alice"
        description = f"console {os.urandom(4).hex()}"
        self.sign_in(alice)
        self.check_page("tokens")

        # A field's 400 is shown beside the field, and nothing is created.
        # (A 30-day window: the test never sees one start over.)
        form = self.submit_token({"description": description, "resource": "teams",
                                  "rl-name-0": "month", "rl-limit-0": 0, "rl-period-0": 2592000})
        self.wait.until(lambda _: form.find_element(
            By.CSS_SELECTOR, "[data-field=resource] > .error").text)
        resource = form.find_element(By.CSS_SELECTOR, "[data-field=resource]")
        self.assertIn("invalid", resource.get_attribute("class"))
        self.assertEqual(resource.find_element(By.TAG_NAME, "input").get_attribute("aria-invalid"), "true")
        self.assertIn("rateLimits[0].limit",
                      form.find_element(By.CSS_SELECTOR, "[data-field=rl-limit-0] > .error").text)
        self.assertEqual(form.find_element(By.NAME, "rl-limit-0").get_attribute("aria-invalid"), "true")
        self.assertEqual(d.switch_to.active_element.get_attribute("name"), "resource",
                         "the focus is on the first field at fault")
        self.check_page("create-error")

        # Created with a rate limit and uses; the secret shown once, copied.
        self.fill(form, {"resource": "/teams", "rl-limit-0": 5, "maxUses": 10})
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        secret_el = self.wait.until(EC.presence_of_element_located((By.ID, "secret")))
        token = secret_el.text
        record_minted(token)
        self.assertTrue(token.startswith("tgl_"))
        self.assertIn("you will not see this again", d.find_element(By.CSS_SELECTOR, "[aria-label='The new secret']").text)
        d.find_element(By.ID, "copy-secret").click()
        copied = d.execute_async_script(
            "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('error: ' + e))")
        self.assertEqual(copied, token)
        token_id = self.detail_id()
        stored = json.dumps(d.execute_script(
            "return [Object.assign({}, localStorage), Object.assign({}, sessionStorage), document.cookie]"))
        self.assertNotIn(token, stored, "the secret is never stored in the browser")
        self.assertNotIn("eyJ", stored, "the JWT is never stored in the browser")
        self.assertNotIn("code=", d.current_url, "the sign-in code left the address bar")
        self.check_page("created")

        # Validated by the test: the use counted and the window shown.
        self.assertTrue(validate(token, resource="/teams/1")["active"])
        d.refresh()  # the issuer's short session signs the tab in again
        self.ready(f"#/tokens/{token_id}")
        self.assertEqual(self.fact("[data-fact=remainingUses]"), "9 of 10")
        self.assertIn("4 of 5 left in this window", self.fact("[data-window=month]"))
        self.assertNotIn(token, d.page_source, "the secret went with the page")
        self.check_page("detail")

        # Edited: only what changed is sent (the uses left stay 9 of 10).
        self.unready()
        d.find_element(By.XPATH, "//a[text()='Edit']").click()
        self.ready(f"#/tokens/{token_id}/edit")
        form = d.find_element(By.CSS_SELECTOR, "main form")
        self.fill(form, {"description": f"{description} renamed"})
        self.unready()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.ready(f"#/tokens/{token_id}")
        self.assertEqual(d.find_element(By.TAG_NAME, "h1").text, f"{description} renamed")
        self.assertEqual(self.fact("[data-fact=remainingUses]"), "9 of 10")

        # Roll with grace: the new secret once, the old one valid until.
        d.find_element(By.XPATH, "//button[text()='Roll the secret']").click()
        dialog = self.wait.until(EC.visibility_of_element_located((By.TAG_NAME, "dialog")))
        grace = dialog.find_element(By.NAME, "graceSeconds")
        grace.clear()
        grace.send_keys("600")
        self.unready()
        dialog.find_element(By.CSS_SELECTOR, "button[value=confirm]").click()
        # The new secret shows first, then the details load beneath it.
        self.ready(f"#/tokens/{token_id}")
        new_token = d.find_element(By.ID, "secret").text
        record_minted(new_token)
        self.assertNotEqual(new_token, token)
        self.assertIn("previous secret stays valid until", d.find_element(By.TAG_NAME, "main").text)
        old = validate(token)
        self.assertTrue(old["active"])
        self.assertIn("secretExpiresAt", old)
        self.assertTrue(validate(new_token)["active"])
        self.check_page("rolled")

        # Disabled: refused.
        self.unready()
        d.find_element(By.XPATH, "//button[text()='Disable']").click()
        self.ready(f"#/tokens/{token_id}")
        d.find_element(By.XPATH, "//button[text()='Enable']")
        self.assertEqual(validate(new_token), {"active": False, "reason": "DISABLED"})

        # Deleted after confirming: gone from the list, NOT_FOUND.
        d.find_element(By.XPATH, "//button[text()='Delete']").click()
        dialog = self.wait.until(EC.visibility_of_element_located((By.TAG_NAME, "dialog")))
        self.unready()
        dialog.find_element(By.CSS_SELECTOR, "button[value=confirm]").click()
        self.ready("#/tokens")
        self.assertEqual(d.find_elements(By.CSS_SELECTOR, f"[data-token='{token_id}']"), [])
        self.assertEqual(validate(new_token), {"active": False, "reason": "NOT_FOUND"})
        self.sign_out()

    def test_c_identities_and_filters(self):
        d = self.driver
        self.sign_in("alice")
        external = f"acme-{os.urandom(3).hex()}"
        self.go("#/identities/new")
        form = d.find_element(By.CSS_SELECTOR, "main form")
        self.fill(form, {"externalId": external, "maxUses": 50})
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), external))
        identity_id = self.detail_id()
        self.assertEqual(self.fact("[data-fact=remainingUses]"), "50 of 50")
        self.check_page("identity")
        # Found by its externalId in the identities' list.
        self.go(f"#/identities?externalId={external}")
        rows = d.find_elements(By.CSS_SELECTOR, "tbody tr[data-identity]")
        self.assertEqual([r.get_attribute("data-identity") for r in rows], [identity_id])
        self.check_page("identities")
        # A token of that identity, found by the identity filter.
        self.go("#/tokens/new")
        form = d.find_element(By.CSS_SELECTOR, "main form")
        self.fill(form, {"description": f"for {external}"})
        Select(form.find_element(By.NAME, "identityId")).select_by_value(identity_id)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "secret")))
        token_id = self.detail_id()
        # A page left before it loaded never replaces the next one: the
        # identity's read, held back 1.5 s, is cancelled by the move to the
        # list of its tokens.
        d.execute_script("""
            const fetch = window.__fetch = window.fetch, slow = arguments[0];
            window.fetch = (url, init) => String(url).startsWith(slow)
              ? (window.__held = true, new Promise(r => setTimeout(r, 1500)).then(() => fetch(url, init)))
              : fetch(url, init);""", f"/identities/{identity_id}")
        d.execute_script("location.hash = arguments[0]", f"#/identities/{identity_id}")
        self.wait.until(lambda d: d.execute_script("return window.__held === true"))
        self.go(f"#/tokens?identityId={identity_id}")
        time.sleep(2)
        d.execute_script("window.fetch = window.__fetch")
        self.assertEqual(d.find_element(By.TAG_NAME, "h1").text, "Tokens")
        rows = d.find_elements(By.CSS_SELECTOR, "tbody tr[data-token]")
        self.assertEqual([r.get_attribute("data-token") for r in rows], [token_id])
        self.check_page("tokens-of-identity")
        # The skip link moves the focus to the content and leaves the page be.
        self.go("#/tokens")
        d.execute_script("document.querySelector('.skip').focus()")
        ActionChains(d).send_keys(Keys.ENTER).perform()
        self.assertEqual(d.switch_to.active_element.get_attribute("id"), "main")
        self.assertEqual(d.find_element(By.TAG_NAME, "h1").text, "Tokens")
        # Keyboard only, with the focus visible: from there to the create page.
        for _ in range(12):
            ActionChains(d).send_keys(Keys.TAB).perform()
            if d.switch_to.active_element.text == "New token":
                break
        self.assertEqual(d.switch_to.active_element.text, "New token")
        outline = d.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        self.assertNotEqual(outline, "none", "the focused link shows no focus ring")
        self.unready()
        ActionChains(d).send_keys(Keys.ENTER).perform()
        self.ready("#/tokens/new")
        # Phone width: nothing scrolls sideways.
        d.set_window_size(390, 844)
        self.go("#/tokens")
        wide = d.execute_script("return document.documentElement.scrollWidth > innerWidth + 1")
        self.assertFalse(wide, "the list scrolls sideways at phone width")
        self.check_page("tokens-phone")
        d.set_window_size(1280, 900)
        type(self).alice_token = token_id
        self.sign_out()

    def test_d_bob_never_sees_alices_tokens(self):
        d = self.driver
        self.sign_in("bob")
        self.assertEqual(d.find_elements(By.CSS_SELECTOR, f"[data-token='{self.alice_token}']"), [])
        self.go(f"#/tokens/{self.alice_token}")
        self.assertEqual(d.find_element(By.TAG_NAME, "h1").text, "No such token")
        self.check_page("bob")
        self.sign_out()


if __name__ == "__main__":
    result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
