"""Word-form rules of the 2 x 2 builder: part of speech of a use, spelling variants, a/an agreement."""

from __future__ import annotations

import pytest

from pseval.data.inflection import (
    find_target,
    indefinite_article,
    inflections,
    replace_word,
    same_word_form,
    spelling_key,
    used_as_pos,
    words_with_spans,
)


def _target(lemma: str, pos: str, text: str) -> tuple[int, int] | None:
    return find_target(inflections(lemma, pos), text, words_with_spans(text), pos=pos)


def test_a_verb_is_not_found_in_its_noun_use() -> None:
    # WordNet gives this as an example of the verb "meet"; "meeting" is a noun here
    text = "I'll probably see you at the meeting"
    assert find_target(inflections("meet", "V"), text, words_with_spans(text)) == (29, 36)  # form only
    assert _target("meet", "V", text) is None
    assert "meeting" not in inflections("meet", "N")  # a noun is never inflected with -ing
    assert _target("meet", "V", "we are meeting at noon") == (7, 14)
    assert _target("meet", "V", "after meeting him she left") == (6, 13)  # a gerund after a preposition
    assert _target("run", "V", "a run in the park") is None
    assert _target("weather", "V", "A weathered old hut") is None  # a participle used as an adjective


def test_a_noun_is_not_found_in_its_verb_use() -> None:
    assert _target("ship", "N", "they ship it daily") is None
    assert _target("ship", "N", "he ships it daily") is None
    assert _target("ship", "N", "I'll ship it tomorrow") is None
    assert _target("ship", "N", "the ships sailed") == (4, 9)
    assert _target("ship", "N", "it ship") == (3, 7)  # only the -s form after he/she/it is a verb


@pytest.mark.parametrize(
    ("text", "span", "pos", "expected"),
    [
        ("at the meeting", (7, 14), "V", False),
        ("at the meeting", (7, 14), "N", True),
        ("Their findings", (6, 14), "V", False),
        ("saw her running", (8, 15), "V", True),  # "her" is an object here, so it is not a determiner
        ("the river that runs", (15, 19), "V", True),
        ("we must walk", (8, 12), "N", False),
        ("a quick walk", (8, 12), "A", True),  # adjectives and adverbs are not checked
    ],
)
def test_used_as_pos(text: str, span: tuple[int, int], pos: str, expected: bool) -> None:
    assert used_as_pos(text, span, pos) is expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("recognize", "recognise"),
        ("color", "colour"),
        ("center", "centre"),
        ("analyze", "analyse"),
        ("organization", "organisation"),
        ("traveled", "travelled"),
        ("anemia", "anaemia"),
        ("defense", "defence"),
        ("catalog", "catalogue"),
        ("gray", "grey"),  # one edit apart
        ("airplane", "aeroplane"),
        ("mold", "mould"),
        ("flash", "flashy"),  # a derived form sharing the beginning
        ("distressed", "stressed"),  # ... or the end
    ],
)
def test_spelling_variants_are_one_word(a: str, b: str) -> None:
    assert same_word_form(a, b) and same_word_form(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [("breathe", "respire"), ("jam", "ram"), ("dirty", "unclean"), ("car", "auto"), ("hum", "busy")],
)
def test_different_words_stay_different(a: str, b: str) -> None:
    assert not same_word_form(a, b)


def test_spelling_key() -> None:
    assert spelling_key("Colour") == spelling_key("color") == "color"
    assert spelling_key("recognised") == spelling_key("recognized")


@pytest.mark.parametrize(
    ("word", "article"),
    [("dirty", "a"), ("unclean", "an"), ("hour", "an"), ("honest", "an"), ("unique", "a"), ("one", "a"),
     ("European", "a"), ("apple", "an"), ("house", "a"), ("Umbrella", "an")],
)  # fmt: skip
def test_indefinite_article(word: str, article: str) -> None:
    assert indefinite_article(word) == article


@pytest.mark.parametrize(
    ("text", "old", "new", "expected"),
    [
        ("he wore an unclean shirt", "unclean", "dirty", "he wore a dirty shirt"),
        ("he wore a dirty shirt", "dirty", "unclean", "he wore an unclean shirt"),
        ("An unclean shirt", "unclean", "dirty", "A dirty shirt"),
        ("A dirty shirt", "dirty", "unclean", "An unclean shirt"),
        ("an old man", "old", "aged", "an aged man"),  # both take "an": unchanged
        ("an historic day", "historic", "important", "an important day"),  # the writer's "an" kept
        ("the unclean shirt", "unclean", "dirty", "the dirty shirt"),
        ("Unclean shirts", "Unclean", "dirty", "Dirty shirts"),  # capital kept
        ("a banana", "banana", "apple", "an apple"),
        ("Santa Ana unclean", "unclean", "dirty", "Santa Ana dirty"),  # "Ana" is no article
    ],
)
def test_replace_word_makes_the_article_agree(text: str, old: str, new: str, expected: str) -> None:
    start = text.index(old)
    replaced, span, _ = replace_word(text, (start, start + len(old)), new)
    assert replaced == expected
    assert replaced[span[0] : span[1]].lower() == new


def test_replace_word_says_whether_it_switched_the_article() -> None:
    assert replace_word("he wore an unclean shirt", (11, 18), "dirty")[2]
    assert not replace_word("an old man", (3, 6), "aged")[2]
