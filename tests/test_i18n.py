"""Every text the UI shows is marked for translation and has a Spanish translation.

`makemessages` is run on a copy of the sources into a temporary folder, so what it
finds is compared with the committed catalogues without touching them; a string
added without a translation (or whose translation went fuzzy) fails here. Text
left unmarked in a template, or put on the page by a script without gettext(),
is looked for directly in the sources.
"""

import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

LOCALE = ROOT / "locale" / "es" / "LC_MESSAGES"
# The project's own apps (every top-level folder with an apps.py), its settings, templates and scripts.
APPS = tuple(sorted(path.parent.name for path in ROOT.glob("*/apps.py")))
SOURCES = (*APPS, "config", "deploy", "templates", "static/js", "manage.py")
DOMAINS = ("django", "djangojs")
SCRIPTS = sorted((ROOT / "static" / "js").glob("*.js"))
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


def parse_po(path):
    """{msgid: (msgstrs, fuzzy)} for every entry but the header."""
    entries = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields, key, fuzzy = {}, None, False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?) (".*")$', line)
            if match:
                key = match.group(1)
                fields[key] = _unquote(match.group(2))
            elif line.startswith('"') and key:
                fields[key] += _unquote(line)
        if fields.get("msgid"):
            strs = [value for name, value in fields.items() if name.startswith("msgstr")]
            entries[fields["msgid"]] = (strs, fuzzy)
    return entries


def _unquote(text):
    import json

    return json.loads(text)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """What makemessages finds in the current sources, per domain."""
    work = tmp_path_factory.mktemp("i18n")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy(source, work / name)
    (work / "locale" / "es").mkdir(parents=True)
    for domain in DOMAINS:
        result = subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "es", "-d", domain, "--no-location"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    return {domain: parse_po(work / "locale" / "es" / "LC_MESSAGES" / f"{domain}.po") for domain in DOMAINS}


@pytest.mark.parametrize("domain", DOMAINS)
def test_it_has_a_spanish_translation_for_every_marked_string(extracted, domain):
    committed = parse_po(LOCALE / f"{domain}.po")
    missing = sorted(set(extracted[domain]) - set(committed))
    assert not missing, (
        f"not in locale/es/LC_MESSAGES/{domain}.po (run makemessages and translate): {missing}"
    )
    untranslated = sorted(
        msgid
        for msgid in extracted[domain]
        if committed[msgid][1] or not all(s.strip() for s in committed[msgid][0])
    )
    assert not untranslated, f"empty or fuzzy Spanish translations in {domain}.po: {untranslated}"


def test_the_catalogues_compile():
    for domain in DOMAINS:
        result = subprocess.run(
            ["msgfmt", "--check", "-o", "/dev/null", str(LOCALE / f"{domain}.po")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


def unmarked_template_text(source):
    """Words a template shows without {% translate %}: text between tags, and the
    title / aria-label / placeholder / alt attributes."""
    text = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", "", source, flags=re.S)
    text = re.sub(r"{%\s*blocktranslate.*?{%\s*endblocktranslate\s*%}", "", text, flags=re.S)
    text = re.sub(r"{#.*?#}", "", text, flags=re.S)
    text = re.sub(r"{%\s*block body_class\s*%}.*?{%\s*endblock\s*%}", "", text, flags=re.S)
    text = re.sub(r"{%.*?%}|{{.*?}}", "", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", "", text, flags=re.S)
    found = []
    for match in re.finditer(r'\b(?:title|aria-label|placeholder|alt)="([^"]*)"', text):
        found.append(match.group(1))
    text = re.sub(r"<!doctype[^>]*>", "", text, flags=re.I)
    found += re.sub(r"<[^>]*>", "\n", text).splitlines()
    return [t.strip() for t in found if re.search(r"[A-Za-z]", re.sub(r"\blivedash\b", "", t))]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_mark_every_text_for_translation(template):
    assert unmarked_template_text(template.read_text(encoding="utf-8")) == []


def test_the_template_check_sees_unmarked_text():
    assert unmarked_template_text('<p>Hello</p><button aria-label="Close">{% translate "x" %}</button>') == [
        "Close",
        "Hello",
    ]


# A script shows text through these; each must get a gettext()/ngettext()/interpolate() result.
SHOWN = re.compile(
    r"(?:"
    + "|".join(
        (
            r"(?:textContent|innerText|title|placeholder)\s*=\s*",
            r"""setAttribute\(\s*["']aria-label["']\s*,\s*""",
            r"toast\(\s*",
            r"setStatus\([^,()]+,\s*[^,()]+,\s*",
            r"""element\(\s*["'][^"']*["']\s*,\s*[^,()]*,\s*""",
        )
    )
    + r""")(?P<literal>["'`][^"'`]*[A-Za-z][^"'`]*["'`])"""
)


def unmarked_script_text(source):
    return [match.group("literal") for match in SHOWN.finditer(source)]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_show_only_translated_text(script):
    assert unmarked_script_text(script.read_text(encoding="utf-8")) == []


def test_the_script_check_sees_literals():
    assert unmarked_script_text('node.textContent = "no data yet";') == ['"no data yet"']
    assert unmarked_script_text('ld.toast("Not connected", body)') == ['"Not connected"']
    assert unmarked_script_text('node.textContent = gettext("no data yet");') == []
