"""core.display: what a terminal would act on, or hide from a reader, is shown as a visible escape."""

from __future__ import annotations

import pytest

from core.display import printable, printable_line


@pytest.mark.parametrize(("raw", "shown"), [
    ("clear\x1b[2J", "clear\\e[2J"),
    ("\x1b]0;title\x07", "\\e]0;title\\x07"),
    ("\x1b]52;c;ZXZpbA==\x07", "\\e]52;c;ZXZpbA==\\x07"),
    ("a\r\nb\tc", "a\\r\\nb\\tc"),
    ("csi\x9b1m del\x7f", "csi\\x9b1m del\\x7f"),
    ("bidi\u202eexe.txt", "bidi\\u202eexe.txt"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("lone \udcff surrogate", "lone \\udcff surrogate"),
    ("soft\xadhyphen", "soft\\xadhyphen"),
    ("hidden\U000e0041\U000e0042tags", "hidden\\U000e0041\\U000e0042tags"),
    ("note\ufff9a\ufffab\ufffb", "note\\ufff9a\\ufffab\\ufffb"),
    ("plain é 中文 ✓", "plain é 中文 ✓"),
])
def test_printable_escapes_what_a_terminal_acts_on_or_hides(raw, shown):
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_printable_line_folds_whitespace_and_escapes_the_rest():
    assert printable_line("one\ntwo\r\n\tthree \x1b[2J") == "one two three \\e[2J"
    assert printable_line(None) == "None"
