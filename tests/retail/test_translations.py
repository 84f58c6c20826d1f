"""The Chinese catalogue is complete and compiled: no English leaks into the default UI.

Read with polib, so wrapped, plural and context entries are checked like the rest.
"""

import gettext
from pathlib import Path

import polib

LOCALE = Path(__file__).resolve().parents[2] / "retail" / "locale" / "zh_Hans" / "LC_MESSAGES"


def entries() -> list[polib.POEntry]:
    return [entry for entry in polib.pofile(str(LOCALE / "django.po")) if not entry.obsolete]


def test_every_message_has_a_chinese_translation_and_none_is_fuzzy():
    catalogue = entries()

    untranslated = [entry.msgid for entry in catalogue if not entry.translated()]
    fuzzy = [entry.msgid for entry in catalogue if entry.fuzzy]

    assert (untranslated, fuzzy) == ([], [])
    assert len(catalogue) > 500


def test_the_compiled_catalogue_matches_the_source():
    with (LOCALE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)

    def compiled_text(entry: polib.POEntry) -> str:
        if entry.msgid_plural:
            if entry.msgctxt:
                return catalogue.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, 1)
            return catalogue.ngettext(entry.msgid, entry.msgid_plural, 1)
        if entry.msgctxt:
            return catalogue.pgettext(entry.msgctxt, entry.msgid)
        return catalogue.gettext(entry.msgid)

    def source_text(entry: polib.POEntry) -> str:
        return entry.msgstr_plural[0] if entry.msgid_plural else entry.msgstr

    stale = [entry.msgid for entry in entries() if compiled_text(entry) != source_text(entry)]

    assert stale == []


def test_a_context_keeps_its_own_translation():
    with (LOCALE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)

    assert (catalogue.gettext("delivery"), catalogue.pgettext("outbox", "delivery")) == (
        "配送",
        "投递",
    )
