"""The Chinese catalogue is complete and compiled: no English leaks into the default UI."""

import gettext
import re
from pathlib import Path

LOCALE = Path(__file__).resolve().parents[2] / "retail" / "locale" / "zh_Hans" / "LC_MESSAGES"
ENTRY = re.compile(r'^msgid "((?:[^"\\]|\\.)*)"\nmsgstr "((?:[^"\\]|\\.)*)"', re.MULTILINE)


def unescape(po_string: str) -> str:
    return po_string.replace('\\"', '"').replace("\\n", "\n")


def po_entries() -> dict[str, str]:
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    return {unescape(msgid): unescape(msgstr) for msgid, msgstr in ENTRY.findall(text) if msgid}


def test_every_message_has_a_chinese_translation_and_none_is_fuzzy():
    text = (LOCALE / "django.po").read_text(encoding="utf-8")

    untranslated = [msgid for msgid, msgstr in po_entries().items() if not msgstr]

    assert untranslated == []
    assert "#, fuzzy" not in text


def test_the_compiled_catalogue_matches_the_source():
    with (LOCALE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)

    stale = [msgid for msgid, msgstr in po_entries().items() if catalogue.gettext(msgid) != msgstr]

    assert stale == []
