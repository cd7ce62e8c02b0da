"""The web console in a real browser: headless Chromium (Debian's
`chromium` package) driven by Playwright, against a running `kumo up` of
the examples. Started by `tests/integration/console.rs`, which prepared
the server (a second version of `hello`, an alias `live` on version 1
routed at `/live`, one invocation of `/hello`) and passes everything in
the environment (the admin token too: it never appears on a command line).

Each step prints what it checked; any failed expectation raises, and the
Rust test fails with this script's output.
"""

import os
import re
import sys
import time
import urllib.request

from playwright.sync_api import expect, sync_playwright

CONSOLE = os.environ["KUMO_CONSOLE_URL"]
GATEWAY = os.environ["KUMO_GATEWAY_URL"]
TOKEN = os.environ["KUMO_ADMIN_TOKEN"]
EARLIER_REQUEST_ID = os.environ["KUMO_REQUEST_ID"]
CAT_PNG = os.environ["KUMO_CAT_PNG"]
SHOTS = os.environ["KUMO_SCREENSHOT_DIR"]
CHROMIUM = os.environ.get("KUMO_CHROMIUM", "/usr/bin/chromium")

# Waits are bounded; none of them is a sleep that a result depends on.
STEP_TIMEOUT_MS = 30_000
EVENT_DEADLINE_S = 90


def step(text):
    print(f"console test: {text}", flush=True)


def gateway_get(path):
    """A gateway request: (body, request id)."""
    with urllib.request.urlopen(GATEWAY + path, timeout=30) as response:
        return response.read().decode(), response.headers["x-kumo-request-id"]


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"))


def reload_until(page, url, check, what):
    """Loads `url` until `check(page)` holds, up to EVENT_DEADLINE_S."""
    deadline = time.monotonic() + EVENT_DEADLINE_S
    while True:
        page.goto(url)
        if check(page):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} at {url}")
        page.wait_for_timeout(500)


def upload(page, bucket, key, file):
    page.goto(f"{CONSOLE}/console/storage/{bucket}")
    page.get_by_label("Key").fill(key)
    page.get_by_label("File").set_input_files(file)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text(f"Uploaded {key}")


def main():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        expect.set_options(timeout=STEP_TIMEOUT_MS)

        step("the console is closed before signing in")
        page.goto(f"{CONSOLE}/console/")
        expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        shot(page, "console-sign-in")

        step("a wrong token is refused")
        page.get_by_label("Admin token").fill("kumo_not_the_token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong admin token")

        step("signing in with the admin token")
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_label("Admin token").press("Enter")
        expect(page).to_have_url(f"{CONSOLE}/console/")
        cookie = next(c for c in context.cookies() if c["name"] == "kumo_console")
        assert cookie["httpOnly"], cookie
        assert cookie["sameSite"] == "Strict", cookie
        assert cookie["path"] == "/console", cookie
        assert cookie["expires"] > time.time(), cookie
        assert TOKEN not in page.url and TOKEN not in page.content()

        step("the overview lists the examples' functions")
        for name in ["hello", "echo", "plain", "thumbnail"]:
            expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(page.get_by_role("main")).to_contain_text("Uptime")
        shot(page, "console-overview")

        step("a function's page shows the invocation made a moment ago")
        page.get_by_role("link", name="hello", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Function hello")
        expect(page.locator("#invocations")).to_contain_text(EARLIER_REQUEST_ID)

        step("the log follows new invocations live")
        log = page.get_by_role("log")
        expect(log).to_have_attribute("data-following", "true")
        _, live_request_id = gateway_get("/hello")
        expect(log).to_contain_text(f"REPORT RequestId: {live_request_id}")

        step("moving an alias from the page moves the gateway's traffic")
        body, _ = gateway_get("/live")
        assert body == "Hello from Kumo", body
        page.get_by_label("Alias", exact=True).fill("live")
        page.get_by_label("Version", exact=True).select_option("2")
        page.get_by_role("button", name="Move alias").click()
        expect(page.get_by_role("status")).to_contain_text(
            "Alias live of hello now routes to version 2"
        )
        expect(page.locator("#alias-table")).to_contain_text("live")
        body, _ = gateway_get("/live")
        assert body.startswith("Hello from a plain wasi:http component"), body
        shot(page, "console-function")

        step("an upload that the thumbnail function cannot read dies")
        upload(
            page,
            "photos",
            "in/broken.png",
            {"name": "broken.png", "mimeType": "image/png", "buffer": b"not a png"},
        )
        dead_url = f"{CONSOLE}/console/events?state=dead"
        reload_until(
            page,
            dead_url,
            lambda p: p.locator("tr", has_text="in/broken.png").count() > 0,
            "the broken upload's event to be dead",
        )
        dead_row = page.locator("tr", has_text="in/broken.png").first
        expect(dead_row).to_contain_text("not a readable image")
        event_id = dead_row.get_attribute("data-event")
        shot(page, "console-events")

        step("after fixing the object, replaying the dead event delivers it")
        upload(page, "photos", "in/broken.png", CAT_PNG)
        page.goto(dead_url)
        page.locator(f'tr[data-event="{event_id}"]').get_by_role(
            "button", name=re.compile("^Replay")
        ).click()
        expect(page.get_by_role("status")).to_contain_text(
            f"Event {event_id} is pending again"
        )
        reload_until(
            page,
            f"{CONSOLE}/console/events?state=done",
            lambda p: p.locator(f'tr[data-event="{event_id}"]').count() > 0,
            "the replayed event to be delivered",
        )

        step("an upload from the page fires the bucket's trigger")
        upload(page, "photos", "in/cat.png", CAT_PNG)
        expect(page.locator("#objects")).to_contain_text("in/cat.png")
        shot(page, "console-storage")
        reload_until(
            page,
            f"{CONSOLE}/console/functions/thumbnail",
            lambda p: "in/cat.png -> thumbs/in/cat.png"
            in (p.get_by_role("log").text_content() or ""),
            "the thumbnail of the uploaded picture",
        )
        expect(page.locator("#invocations")).to_contain_text("event")
        page.goto(f"{CONSOLE}/console/storage/thumbnails")
        expect(page.locator("#objects")).to_contain_text("thumbs/in/cat.png")

        step("billing shows charts, a table and a CSV")
        page.goto(f"{CONSOLE}/console/billing")
        expect(page.locator("#billing-rows")).to_contain_text("thumbnail")
        expect(page.locator("figure.chart svg rect").first).to_be_visible()
        shot(page, "console-billing")
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download CSV").click()
        csv = open(download_info.value.path()).read()
        assert csv.startswith("day_start_utc,function,invocations"), csv
        assert ",hello," in csv, csv

        step("the keyboard reaches the content and the controls")
        page.goto(f"{CONSOLE}/console/")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()

        step("readable 390 px wide: nothing wider than the screen")
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ["/console/", "/console/functions/hello", "/console/billing",
                     "/console/events", "/console/storage/photos"]:
            page.goto(CONSOLE + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is {overflow} px wider than 390 px"
        page.goto(f"{CONSOLE}/console/functions/hello")
        shot(page, "console-function-390")
        page.set_viewport_size({"width": 1280, "height": 720})

        step("signing out closes the pages")
        page.goto(f"{CONSOLE}/console/")
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        assert not any(c["name"] == "kumo_console" for c in context.cookies())
        for path in ["/console/", "/console/functions/hello", "/console/billing",
                     "/console/events", "/console/storage"]:
            page.goto(CONSOLE + path)
            expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        answer = context.request.get(f"{CONSOLE}/console/live/instances", max_redirects=0)
        assert answer.status == 303, answer.status

        browser.close()
    step("done")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # the Rust test prints this output
        print(f"console test failed: {error!r}", file=sys.stderr, flush=True)
        raise
