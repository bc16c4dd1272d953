"""The page as operators use it, in a real Chromium against a real daphne worker,
the collector, Redis and the database: readable charts, honest status, phones and
tablets, Spanish and English, light and dark, and accessibility checked by axe.

The screenshot set (both languages x both themes x 390/768/1440 px) is written to
test-artifacts/screenshots/ on every run, so anyone can look at the page.
"""

import time

import pytest
from axe_playwright_python.sync_playwright import Axe

from alerts.models import AlertRule
from conftest import PASSWORD
from dashboard.live import publish_metric
from dashboard.models import Metric, UserPreference
from deploy.supervisor import Supervisor
from notifications.services import notify
from tests.e2e.conftest import ARTIFACTS
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
WIDTHS = {"phone": 390, "tablet": 768, "desktop": 1440}
BLOCKING = ("serious", "critical")
AXE = Axe()


@pytest.fixture
def base_url(daphne_workers):
    (url,) = daphne_workers(1)
    return url


@pytest.fixture
def collector(subprocess_env):
    supervisor = Supervisor(env=subprocess_env)
    supervisor.python("collector", "manage.py", "collect_metrics")
    yield supervisor
    supervisor.stop()


@pytest.fixture
def browse(chromium, open_page, base_url):
    """`browse(user, lang=..., width=...)`: a page signed in as `user` (None: anonymous)
    in its own browser, its Accept-Language set to `lang`."""

    def open_(user, lang="en", width=1280, name=None):
        context = chromium.new_context(
            viewport={"width": width, "height": 900}, locale=lang, timezone_id="Europe/Madrid"
        )
        if user is not None:
            cookie = next(iter(session_cookie(user).items()))
            context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base_url}])
        return open_page(name or f"{getattr(user, 'username', 'anonymous')}-{lang}-{width}", context=context)

    return open_


def open_dashboard(page, base_url):
    page.goto(base_url + "/all/")
    page.wait_for_function("() => window.livedash && window.livedash.charts")
    return page


def blocking_violations(page, context=None):
    results = AXE.run(page, context=context)
    found = [v for v in results.response["violations"] if v.get("impact") in BLOCKING]
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def stream_state(page):
    return page.get_attribute("#sse-status", "data-state")


def wait_for_state(page, selector, state, timeout=20_000):
    page.wait_for_function(
        "([s, want]) => document.querySelector(s) && document.querySelector(s).dataset.state === want",
        arg=[selector, state],
        timeout=timeout,
    )


# ---- the login page --------------------------------------------------------


def test_the_login_page_is_accessible_and_puts_the_cursor_where_the_fix_is(browse, base_url, alice):
    page = browse(None)
    page.goto(base_url + "/accounts/login/")
    assert blocking_violations(page) == []
    assert page.evaluate("document.activeElement.id") == "id_username"
    page.fill("#id_username", "alice")
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    page.locator(".form-error").wait_for()
    assert page.evaluate("document.activeElement.id") == "id_password"
    assert page.input_value("#id_username") == "alice"
    assert blocking_violations(page) == []

    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    page.click("text=Log out")
    page.wait_for_url("**/accounts/login/")
    assert page.locator("[role=status]", has_text="You have been signed out.").is_visible()


def test_the_login_page_speaks_spanish_to_a_spanish_browser(browse, base_url):
    page = browse(None, lang="es-ES")
    page.goto(base_url + "/accounts/login/")
    assert page.get_attribute("html", "lang") == "es"
    assert page.inner_text("button[type=submit]") == "Entrar"
    # The user's own choice wins over Accept-Language from then on.
    page.select_option("#language-select", "en")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.inner_text("button[type=submit]") == "Sign in"
    page.reload()
    assert page.get_attribute("html", "lang") == "en"


# ---- the dashboard in every language, theme and width -------------------------


def page_colours(page):
    return page.evaluate(
        "[getComputedStyle(document.documentElement).backgroundColor, getComputedStyle(document.body).color]"
    )


def layout_facts(page):
    return page.evaluate(
        """() => {
          const lefts = new Set([...document.querySelectorAll('.chart-section:not([hidden]) .chart-card')]
            .map((card) => Math.round(card.getBoundingClientRect().left)));
          return {
            scroll: document.documentElement.scrollWidth - window.innerWidth,
            columns: lefts.size,
          };
        }"""
    )


def english_left_in_spanish(page):
    """Texts on the Spanish page (text nodes, aria-labels, titles) that are an English
    msgid of the catalogues whose Spanish differs: something rendered without gettext."""
    from tests.test_i18n import LOCALE, parse_po

    english = set()
    for domain in ("django", "djangojs"):
        for msgid, (strs, _fuzzy) in parse_po(LOCALE / f"{domain}.po").items():
            if "%" not in msgid and msgid not in strs:
                english.add(msgid)
    shown = page.evaluate(
        """() => {
          const out = [];
          const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
          while (walker.nextNode()) out.push(walker.currentNode.textContent.trim());
          for (const node of document.querySelectorAll('[aria-label], [title]')) {
            out.push(node.getAttribute('aria-label') || '', node.getAttribute('title') || '');
          }
          return out.filter(Boolean);
        }"""
    )
    return sorted(english & set(shown))


def bell_menu_box(page):
    page.click("#bell-button")
    page.locator("#bell-menu").wait_for()
    box = page.evaluate(
        """() => { const r = document.getElementById('bell-menu').getBoundingClientRect();
                   return {left: r.left, right: r.right, width: innerWidth}; }"""
    )
    return box


def test_every_language_theme_and_width(browse, base_url, collector, alice):
    notify("alice", "Deploy finished", body="Version 42 is live", level="success", link="/")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen_colours = {}
    for lang, bell_name, log_out in (
        ("en", "Notifications", "Log out"),
        ("es", "Notificaciones", "Cerrar sesión"),
    ):
        for theme in ("light", "dark"):
            UserPreference.objects.update_or_create(user=alice, defaults={"theme": theme})
            for label, width in WIDTHS.items():
                page = browse(alice, lang=lang, width=width, name=f"{lang}-{theme}-{label}")
                open_dashboard(page, base_url)
                page.wait_for_function("() => livedash.charts.points('cpu') >= 2", timeout=30_000)
                page.wait_for_function(
                    "() => document.querySelector('#ws-status').dataset.state === 'connected'"
                )
                assert page.get_attribute("html", "data-theme") == theme
                assert page.get_attribute("html", "lang") == lang
                assert page.inner_text(".user-group button[type=submit]") == log_out
                assert page.get_attribute("#bell-button", "aria-label").startswith(bell_name)
                facts = layout_facts(page)
                assert facts["scroll"] <= 0, (
                    f"{lang} {theme} {width}px scrolls sideways by {facts['scroll']} px"
                )
                if label == "tablet":
                    assert facts["columns"] == 2, "a tablet shows two columns of charts"
                seen_colours[theme] = page_colours(page)
                page.wait_for_timeout(300)  # let the first frames settle before the picture
                page.screenshot(
                    path=str(SCREENSHOTS / f"dashboard-{lang}-{theme}-{width}.png"), full_page=True
                )
                if label == "desktop":
                    assert blocking_violations(page) == [], f"axe on the dashboard, {lang} {theme}"
                box = bell_menu_box(page)
                assert box["left"] >= 0 and box["right"] <= box["width"], (
                    f"bell menu outside at {width}px: {box}"
                )
                if label == "desktop":
                    assert blocking_violations(page, "#bell") == [], (
                        f"axe on the open bell menu, {lang} {theme}"
                    )
                if lang == "es" and label == "desktop":
                    assert english_left_in_spanish(page) == []
                if label == "phone":
                    page.screenshot(path=str(SCREENSHOTS / f"bell-{lang}-{theme}-{width}.png"))
                page.context.close()
    # The theme is on the root element: html and body colours change with it.
    assert seen_colours["light"] != seen_colours["dark"]


def test_the_theme_switcher_applies_at_once_and_is_remembered(browse, base_url, alice):
    page = browse(alice)
    page.emulate_media(color_scheme="dark")  # "system" starts dark here
    open_dashboard(page, base_url)
    dark = page_colours(page)
    page.select_option("#theme-select", "light")
    page.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    assert page_colours(page) != dark
    for _ in range(50):  # the save is a fetch in the background
        if UserPreference.objects.filter(user=alice, theme="light").exists():
            break
        page.wait_for_timeout(100)
    assert UserPreference.objects.get(user=alice).theme == "light"
    other_browser = open_dashboard(browse(alice, name="alice-elsewhere"), base_url)
    assert other_browser.get_attribute("html", "data-theme") == "light"


def chart_colours(page):
    return page.evaluate("livedash.charts.colors()")


def test_the_system_theme_follows_the_operating_system(browse, base_url, alice):
    page = browse(alice)
    page.emulate_media(color_scheme="light")
    open_dashboard(page, base_url)
    assert page.get_attribute("html", "data-theme") == "system"
    light, light_charts = page_colours(page), chart_colours(page)
    page.screenshot(path=str(SCREENSHOTS / "system-theme-light.png"))
    page.emulate_media(color_scheme="dark")
    assert page_colours(page) != light
    # The charts draw on a canvas: their colours must be resolved ones, and follow the theme.
    page.wait_for_function("(light) => livedash.charts.colors().line !== light", arg=light_charts["line"])
    dark_charts = chart_colours(page)
    page.screenshot(path=str(SCREENSHOTS / "system-theme-dark.png"))
    for colours in (light_charts, dark_charts):
        assert all(colour.startswith("rgb") for colour in colours.values()), colours
    assert light_charts["line"] == "rgb(31, 86, 201)" and dark_charts["line"] == "rgb(106, 157, 255)"


# ---- charts ---------------------------------------------------------------------


def test_hovering_shows_value_and_time_in_text_on_every_chart(browse, base_url, collector, alice):
    page = open_dashboard(browse(alice, width=1440), base_url)
    page.wait_for_function(
        "() => livedash.charts.points('cpu') >= 2 && livedash.charts.points('memory') >= 2", timeout=60_000
    )
    box = page.locator(".chart-card[data-key=cpu] .chart-plot .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] / 2)
    cpu = page.locator(".chart-card[data-key=cpu] .chart-readout")
    memory = page.locator(".chart-card[data-key=memory] .chart-readout")
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-key=memory] .chart-readout')"
        ".textContent.includes('%')"
    )
    # "12:03:04 · 4.6 %": the time, and the value with a fixed number of decimals and the unit.
    assert cpu.inner_text().endswith(" %") and " · " in cpu.inner_text()
    assert memory.inner_text().split(" · ")[0] == cpu.inner_text().split(" · ")[0], "crosshair not synced"
    value = cpu.inner_text().split(" · ")[1]
    assert value.split(" ")[0].split(".")[1].isdigit() and len(value.split(" ")[0].split(".")[1]) == 1
    # The text alternative: current value, range, state.
    label = page.get_attribute(".chart-card[data-key=cpu] .chart-plot", "aria-label")
    assert "current value" in label and "range" in label
    assert any(word in label for word in ("normal", "warning", "critical", "alert firing"))
    # The host name, the time zone, and livedash's own metrics in their own section.
    assert page.inner_text(".host").strip()
    assert "Europe/Madrid" in page.inner_text("#timezone")
    own = page.locator(".chart-section[data-section=app] .chart-card").evaluate_all(
        "cards => cards.map(c => c.dataset.key)"
    )
    assert set(own) == {"sse_connections", "ws_connections", "events_per_second"}
    host = page.locator(".chart-section[data-section=host] .chart-card").evaluate_all(
        "cards => cards.map(c => c.dataset.key)"
    )
    assert "cpu" in host and "sse_connections" not in host


def test_byte_axes_step_in_binary_units_and_numbers_follow_the_locale(browse, base_url, alice):
    Metric.objects.create(key="upload", label="Upload", unit="B/s")
    now = time.time()
    for i, value in enumerate([100_000, 150_000, 200_000, 180_000]):
        publish_metric("upload", value, ts=now - 30 + i)
    Metric.objects.create(key="ratio", label="Ratio", unit="%")
    publish_metric("ratio", 7, ts=now - 2)
    page = open_dashboard(browse(alice, lang="es"), base_url)
    page.wait_for_function("() => livedash.charts.points('upload') >= 4")
    labels = page.evaluate("livedash.format.axis([0, 65536, 131072, 196608], 'B/s', 65536)")
    assert labels == ["0 KiB/s", "64 KiB/s", "128 KiB/s", "192 KiB/s"]
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-key=ratio] .chart-value').textContent === '7,0'"
    )
    assert page.inner_text(".chart-card[data-key=upload] .chart-unit") == "KiB/s"
    assert "," in page.inner_text(".chart-card[data-key=upload] .chart-value")


# ---- honest status -------------------------------------------------------------


def test_the_stream_indicator_tells_live_stale_paused_and_down(browse, base_url, admin_user):
    page = open_dashboard(browse(admin_user), base_url)
    publish_metric("orders", 1)
    wait_for_state(page, "#sse-status", "connected")
    # Nothing arrives (no collector): amber within a few intervals, not "live".
    wait_for_state(page, "#sse-status", "stale", timeout=15_000)
    publish_metric("orders", 2)
    wait_for_state(page, "#sse-status", "connected")
    # Paused sampling is shown as paused.
    wait_for_state(page, "#ws-status", "connected")
    page.click("#pause-button")
    wait_for_state(page, "#sse-status", "paused")
    assert page.inner_text("#sse-status .detail").startswith("sampling paused")
    page.click("#pause-button")
    # The connection down: red.
    page.context.set_offline(True)
    wait_for_state(page, "#sse-status", "offline")
    page.context.set_offline(False)


def test_a_card_says_how_old_its_value_is_when_stale_and_no_data_yet_is_never_over_history(
    browse, base_url, alice
):
    publish_metric("orders", 12, ts=time.time() - 150)
    page = open_dashboard(browse(alice), base_url)
    age = page.locator(".chart-card[data-key=orders] .chart-age")
    age.wait_for()
    assert age.inner_text().startswith("last value 2 min ago")
    assert "stale" in page.get_attribute(".chart-card[data-key=orders]", "class")
    assert "no data yet" not in page.inner_text("body")


# ---- toasts ----------------------------------------------------------------------


def test_toasts_have_a_level_word_a_link_and_a_close_button_and_errors_stay(browse, base_url, alice):
    page = open_dashboard(browse(alice), base_url)
    wait_for_state(page, "#ws-status", "connected")
    notify("alice", "Disk almost full", body="93% used", level="error", link="/admin/")
    notify("alice", "Backup done", level="info")
    error = page.locator(".toast", has_text="Disk almost full")
    info = page.locator(".toast", has_text="Backup done")
    error.wait_for()
    info.wait_for()
    assert error.locator(".level-word").text_content().endswith("Error")
    assert error.get_attribute("role") == "alert"
    assert error.locator("a.link").get_attribute("href") == "/admin/"
    # An info toast goes by itself; the error is still there after it.
    info.wait_for(state="detached", timeout=15_000)
    assert error.is_visible()
    error.get_by_role("button", name="Close").click()
    error.wait_for(state="detached")


# ---- alert state -------------------------------------------------------------------


def test_a_firing_rule_shows_on_its_card_and_an_admin_edit_reaches_the_page(
    browse, base_url, collector, alice
):
    from dashboard.collector.collector import register_builtin_metrics

    register_builtin_metrics()
    AlertRule.objects.create(metric=Metric.objects.get(key="processes"), threshold=1, sustain_seconds=0)
    page = open_dashboard(browse(alice), base_url)
    card = ".chart-card[data-key=processes]"
    page.wait_for_selector(card)
    page.wait_for_function(
        f"() => document.querySelector('{card}').classList.contains('firing')", timeout=30_000
    )
    assert page.text_content(f"{card} .chart-state") == "alert firing"
    border = page.evaluate(f"getComputedStyle(document.querySelector('{card}')).borderTopColor")
    critical = page.evaluate(
        "(() => { const d = document.createElement('div'); d.style.color = 'var(--critical)';"
        " document.body.append(d); const c = getComputedStyle(d).color; d.remove(); return c; })()"
    )
    assert border == critical, "a firing card's border shows firing, not green"
    assert page.evaluate("livedash.charts.definition('processes').rules") == [
        {"threshold": 1.0, "comparison": "above", "level": "warning"}
    ]
    # An admin renames the metric and gives it a unit: the open page follows without a reload.
    metric = Metric.objects.get(key="processes")
    metric.label = "Running processes"
    metric.unit = "procs"
    metric.save()
    page.wait_for_function(
        f"() => document.querySelector('{card} .chart-title').textContent === 'Running processes'"
    )
    assert page.inner_text(f"{card} .chart-unit") == "procs"


# ---- the admin ------------------------------------------------------------------------


def test_admin_lists_fit_at_1440_and_firing_is_not_a_green_tick(browse, base_url, admin_user):
    from dashboard.collector.collector import register_builtin_metrics

    register_builtin_metrics()
    cpu = Metric.objects.get(key="cpu")
    AlertRule.objects.create(metric=cpu, threshold=90, name="CPU hot")
    AlertRule.objects.filter(name="CPU hot").update(firing=True)
    AlertRule.objects.create(metric=cpu, threshold=5, comparison="below", name="CPU idle", enabled=False)
    page = browse(admin_user, width=1440)
    for path in ("/admin/alerts/alertrule/", "/admin/dashboard/metric/"):
        page.goto(base_url + path)
        overflow = page.evaluate(
            "(() => { const r = document.querySelector('.results');"
            " return r.scrollWidth - r.clientWidth; })()"
        )
        assert overflow <= 0, f"{path} cuts {overflow} px of columns at 1440 px"
        page.screenshot(path=str(SCREENSHOTS / f"admin-{path.strip('/').replace('/', '-')}-1440.png"))
    page.goto(base_url + "/admin/alerts/alertrule/")
    hot = page.locator("tr", has_text="CPU hot")
    assert "Firing" in hot.inner_text()
    # A firing rule is not shown with Django's green "yes" icon.
    assert hot.locator("td.field-state img").count() == 0
    assert "Off" in page.locator("tr", has_text="CPU idle").inner_text()
