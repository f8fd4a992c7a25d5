"""Which surface forms count as a target word: inflection rules shared by the datasets and their builder.

Two uses, one rule set:

- :func:`inflections` gives the forms of a lemma for one part of speech (regular -s/-ed/-ing rules plus
  tables of irregular forms). The WordNet builder (``scripts/build_wordnet_dataset.py``) uses it to find
  a lemma in an example sentence, so it is deliberately strict.
- :func:`span_matches_word` decides whether the text a pair's span points at is the pair's word, so a
  span that points elsewhere ("nothing" for "curious") is dropped instead of scored. It is lenient: a
  wrong span is almost never a form of the word, while a rejected good span would silently shrink the
  dataset. The rule, case-insensitive after dropping a possessive ``'s``:

  1. the span text is the word, or one of its :func:`inflections` under *any* part of speech (a pair's
     ``pos`` field of a custom file may use its own tag set), or a comparative/superlative
     (-er/-est, -ier/-iest, doubled consonant, irregular good/better/best ...), or an irregular form of a
     prefixed irregular verb (undo -> undid, override -> overrode), or a contraction of be/have/will/would
     ('s, 've, 're, 'm, 'd, 'll);
  2. otherwise, for a word of at least 4 letters, a shared stem: the span starts with the word's first
     ``max(4, len(word) - 2)`` letters and is at most 4 letters longer than the word (curious ->
     curiously, criterion -> criteria, bank -> banking; not bank -> bath, and never car -> carpet);
  3. a word of several words ("ice cream") must match word for word, the last one by rules 1-2.

  On the 14,932 spans of WiC v1.0 (all splits) the rule rejects exactly one, a WiC annotation error
  (train: "called round", target index on "round").

The word form x meaning builder (``scripts/wordnet_2x2.py``) also needs to know whether a form is used as
the synset's part of speech (:func:`used_as_pos`: "at the meeting" is no use of the verb *meet*), whether two
lemmas are one word spelt two ways (:func:`same_word_form`: recognize/recognise) and how to put a synonym in
a sentence with its article agreeing (:func:`replace_word`: "a dirty" / "an unclean").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_VOWELS = frozenset("aeiou")

#: Irregular verbs: base -> past and past-participle forms ('/' separates alternatives). WordNet's npm
#: tarball has no ``verb.exc``, so this list covers the common irregular verbs of English.
_IRREGULAR_VERBS_TEXT = """
arise arose arisen|awake awoke awoken|be was/were/is/are/am been|bear bore borne/born|beat beat beaten
become became become|begin began begun|bend bent bent|bet bet bet|bid bid/bade bid/bidden|bind bound bound
bite bit bitten|bleed bled bled|blow blew blown|break broke broken|breed bred bred|bring brought brought
build built built|burn burned/burnt burned/burnt|burst burst burst|buy bought bought|cast cast cast
catch caught caught|choose chose chosen|cling clung clung|come came come|cost cost cost|creep crept crept
cut cut cut|deal dealt dealt|dig dug dug|dive dived/dove dived|do did done|draw drew drawn
dream dreamed/dreamt dreamed/dreamt|drink drank drunk|drive drove driven|dwell dwelt/dwelled dwelt/dwelled
eat ate eaten|fall fell fallen|feed fed fed|feel felt felt|fight fought fought|find found found
flee fled fled|fling flung flung|fly flew flown|forbid forbade forbidden|forget forgot forgotten
forgive forgave forgiven|freeze froze frozen|get got got/gotten|give gave given|go went gone|grind ground ground
grow grew grown|hang hung/hanged hung/hanged|have had had|hear heard heard|hide hid hidden|hit hit hit
hold held held|hurt hurt hurt|keep kept kept|kneel knelt/kneeled knelt/kneeled|knit knit/knitted knit/knitted
know knew known|lay laid laid|lead led led|lean leaned/leant leaned/leant|leap leaped/leapt leaped/leapt
learn learned/learnt learned/learnt|leave left left|lend lent lent|let let let|lie lay/lied lain/lied
light lit/lighted lit/lighted|lose lost lost|make made made|mean meant meant|meet met met|mow mowed mowed/mown
overcome overcame overcome|pay paid paid|prove proved proved/proven|put put put|quit quit quit|read read read
rid rid rid|ride rode ridden|ring rang rung|rise rose risen|run ran run|saw sawed sawed/sawn|say said said
see saw seen|seek sought sought|sell sold sold|send sent sent|set set set|sew sewed sewed/sewn
shake shook shaken|shed shed shed|shine shone/shined shone/shined|shoot shot shot|show showed shown/showed
shrink shrank/shrunk shrunk|shut shut shut|sing sang sung|sink sank sunk|sit sat sat|sleep slept slept
slide slid slid|sling slung slung|slit slit slit|smell smelled/smelt smelled/smelt|sow sowed sown/sowed
speak spoke spoken|speed sped/speeded sped/speeded|spell spelled/spelt spelled/spelt|spend spent spent
spill spilled/spilt spilled/spilt|spin spun spun|spit spat/spit spat/spit|split split split
spoil spoiled/spoilt spoiled/spoilt|spread spread spread|spring sprang sprung|stand stood stood|steal stole stolen
stick stuck stuck|sting stung stung|stink stank stunk|stride strode stridden|strike struck struck/stricken
string strung strung|strive strove/strived striven/strived|swear swore sworn|sweep swept swept
swell swelled swollen/swelled|swim swam swum|swing swung swung|take took taken|teach taught taught
tear tore torn|tell told told|think thought thought|throw threw thrown|thrust thrust thrust|tread trod trodden
understand understood understood|undertake undertook undertaken|upset upset upset|wake woke/waked woken/waked
wear wore worn|weave wove/weaved woven/weaved|weep wept wept|win won won|wind wound wound|withdraw withdrew withdrawn
wring wrung wrung|write wrote written
"""

#: Irregular noun plurals (WordNet's npm tarball has no ``noun.exc``).
_IRREGULAR_NOUNS_TEXT = """
man men|woman women|child children|foot feet|tooth teeth|goose geese|mouse mice|louse lice|person people
ox oxen|die dice|leaf leaves|loaf loaves|knife knives|wife wives|life lives|half halves|wolf wolves
calf calves|shelf shelves|thief thieves|self selves|sheaf sheaves|elf elves|scarf scarves/scarfs
hoof hooves/hoofs|wharf wharves/wharfs|criterion criteria|phenomenon phenomena|datum data|medium media/mediums
index indices/indexes|appendix appendices/appendixes|crisis crises|thesis theses|analysis analyses
basis bases|axis axes|hypothesis hypotheses|fungus fungi/funguses|cactus cacti/cactuses|nucleus nuclei
stimulus stimuli|radius radii|alumnus alumni|larva larvae|formula formulae/formulas|antenna antennae/antennas
"""


def _parse_table(text: str) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for entry in text.replace("\n", "|").split("|"):
        fields = entry.split()
        if fields:
            table[fields[0]] = [form for field in fields[1:] for form in field.split("/")]
    return table


IRREGULAR_VERBS: dict[str, list[str]] = _parse_table(_IRREGULAR_VERBS_TEXT)
IRREGULAR_NOUNS: dict[str, list[str]] = _parse_table(_IRREGULAR_NOUNS_TEXT)


def _third_person(lemma: str) -> set[str]:
    """The -s / -es / -ies forms (noun plural, verb third person singular)."""
    forms = {lemma + "s"}
    if lemma.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(lemma + "es")
    if len(lemma) > 1 and lemma.endswith("y") and lemma[-2] not in _VOWELS:
        forms.add(lemma[:-1] + "ies")
    return forms


def _doubles_final_consonant(lemma: str) -> bool:
    """Whether the lemma ends consonant-vowel-consonant, so -ed/-ing may double it (stop -> stopped)."""
    return (
        len(lemma) >= 3
        and lemma[-1] not in _VOWELS
        and lemma[-1] not in "wxy"
        and lemma[-2] in _VOWELS
        and lemma[-3] not in _VOWELS
    )


def inflections(lemma: str, pos: str) -> frozenset[str]:
    """All surface forms accepted as the lemma in an example (lowercase).

    Nouns: the lemma, -s/-es/-ies plurals and irregular plurals. Verbs: the lemma, -s/-es/-ies, -ed/-d/-ied,
    -ing (with e-drop, ie -> ying and final-consonant doubling) and irregular past forms. Adjectives and
    adverbs: the lemma only. The rules over-generate a little ("visitted"); such strings do not occur in
    English text, so they cost nothing and keep the rules simple.
    """
    forms = {lemma}
    if pos == "N":
        forms |= _third_person(lemma)
        forms |= set(IRREGULAR_NOUNS.get(lemma, ()))
        if lemma.endswith("man") and lemma not in {"human", "german", "roman", "shaman", "caiman"}:
            forms.add(lemma[:-3] + "men")
    elif pos == "V":
        forms |= _third_person(lemma)
        if lemma == "be":
            forms |= {"being", "is", "are", "am", "was", "were", "been"}
            return frozenset(forms)
        if lemma == "have":
            forms.add("has")
        if lemma == "do":
            forms.add("does")
        # -ing
        if lemma.endswith("ie"):
            forms.add(lemma[:-2] + "ying")
        elif lemma.endswith("e") and not lemma.endswith(("ee", "ye", "oe")):
            forms.add(lemma[:-1] + "ing")
        forms.add(lemma + "ing")
        doubled = lemma + lemma[-1] if _doubles_final_consonant(lemma) else None
        if doubled:
            forms.add(doubled + "ing")
        # past tense / participle
        if lemma in IRREGULAR_VERBS:
            forms |= set(IRREGULAR_VERBS[lemma])
        elif lemma.endswith("e"):
            forms.add(lemma + "d")
        elif len(lemma) > 1 and lemma.endswith("y") and lemma[-2] not in _VOWELS:
            forms.add(lemma[:-1] + "ied")
        else:
            forms.add(lemma + "ed")
            if doubled:
                forms.add(doubled + "ed")
    return frozenset(forms)


#: Irregular forms the strict builder rules leave out, accepted when validating spans.
_EXTRA_IRREGULAR_VERBS_TEXT = """
hew hewed hewn|strew strewed strewn|saw sawn|shear shorn|smite smote smitten|slay slew slain
forsake forsook forsaken|tread trodden|abide abode|awaken awoke|beseech besought|bless blest
cleave cleft/clove cloven|gird girt|hang hung|lade laden|rend rent|shoe shod|shrive shrove shriven
spit spat|stave stove|thrive throve thriven|wed wed|wet wet|will would|can could|shall should|may might
"""

_IRREGULAR_COMPARISON_TEXT = """
good better best|well better best|bad worse worst|badly worse worst|ill worse worst|far farther/further
farthest/furthest|little less/lesser least|many more most|much more most|old elder eldest|late latter last
"""

#: Contractions written as their own token in WiC and other tokenised sources.
_CONTRACTIONS: dict[str, frozenset[str]] = {
    "be": frozenset({"'s", "'re", "'m"}),
    "have": frozenset({"'s", "'ve", "'d"}),
    "will": frozenset({"'ll"}),
    "would": frozenset({"'d"}),
    "not": frozenset({"n't"}),
}

#: Prefixes under which an irregular verb keeps its irregular forms (undo -> undid, override -> overrode).
_VERB_PREFIXES: tuple[str, ...] = (
    "over", "under", "out", "with", "fore", "mis", "un", "re", "up", "be", "for", "in", "down", "back",
)  # fmt: skip

EXTRA_IRREGULAR_VERBS: dict[str, list[str]] = _parse_table(_EXTRA_IRREGULAR_VERBS_TEXT)
IRREGULAR_COMPARISON: dict[str, list[str]] = _parse_table(_IRREGULAR_COMPARISON_TEXT)

_MIN_STEM = 4
_MAX_STEM_DROP = 2
_MAX_STEM_SUFFIX = 4


def comparisons(word: str) -> frozenset[str]:
    """Comparative and superlative forms of an adjective or adverb (over-generating, like the other rules)."""
    forms = set(IRREGULAR_COMPARISON.get(word, ()))
    if word.endswith("e"):
        forms |= {word + "r", word + "st"}
    elif len(word) > 1 and word.endswith("y") and word[-2] not in _VOWELS:
        forms |= {word[:-1] + "ier", word[:-1] + "iest"}
    else:
        forms |= {word + "er", word + "est"}
        if _doubles_final_consonant(word):
            forms |= {word + word[-1] + "er", word + word[-1] + "est"}
    return frozenset(forms)


def accepted_forms(word: str) -> frozenset[str]:
    """Every form rule 1 of :func:`span_matches_word` accepts for a single (lowercase) word."""
    forms: set[str] = set()
    for pos in ("N", "V", "A", "R"):
        forms |= inflections(word, pos)
    forms |= comparisons(word)
    forms |= set(EXTRA_IRREGULAR_VERBS.get(word, ()))
    forms |= _CONTRACTIONS.get(word, frozenset())
    for prefix in _VERB_PREFIXES:
        base = word[len(prefix) :]
        if word.startswith(prefix) and len(base) >= 2:
            for table in (IRREGULAR_VERBS, EXTRA_IRREGULAR_VERBS):
                forms |= {prefix + form for form in table.get(base, ())}
    return frozenset(forms)


def span_matches_word(span_text: str, word: str) -> bool:
    """Whether ``span_text`` (what a pair's span points at) is ``word`` or a form of it (see module doc)."""
    span_words = _normalise(span_text).split()
    target_words = _normalise(word).split()
    if not span_words or len(span_words) != len(target_words):
        return False
    if span_words[:-1] != target_words[:-1]:
        return False
    return _single_word_matches(_strip_possessive(span_words[-1]), target_words[-1])


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").casefold()


def _strip_possessive(text: str) -> str:
    if text.endswith("'s") and len(text) > 2:
        return text[:-2]
    if text.endswith("'") and len(text) > 1 and not text.startswith("'"):
        return text[:-1]
    return text


def _single_word_matches(span: str, word: str) -> bool:
    if span == word or span in accepted_forms(word):
        return True
    if len(word) < _MIN_STEM:
        return False
    stem = word[: max(_MIN_STEM, len(word) - _MAX_STEM_DROP)]
    return span.startswith(stem) and len(span) <= len(word) + _MAX_STEM_SUFFIX


#: A whole word: letters not glued to letters, digits, underscores, hyphens or a leading apostrophe
#: (``bank`` is not a word of ``river-bank``); a following ``'s`` (possessive) is allowed, other clitics
#: (``don't``) are not.
_WORD_RE = re.compile(r"(?<![\w\-'])[A-Za-z]+(?![\w\-])(?!'(?!s\b)[A-Za-z])")


def words_with_spans(text: str) -> list[tuple[str, tuple[int, int]]]:
    """The whole words of ``text``, lowercased, with their character spans."""
    return [(m.group().lower(), m.span()) for m in _WORD_RE.finditer(text)]


def find_target(
    forms: frozenset[str],
    text: str,
    words: Sequence[tuple[str, tuple[int, int]]],
    pos: str | None = None,
) -> tuple[int, int] | None:
    """The span of the only whole-word occurrence of any of ``forms`` in ``text``.

    None when there is no occurrence, several (ambiguous), the occurrence is quoted as a word
    (```truth'``), which mentions the word instead of using it, or, with ``pos``, when the word before it
    shows it is used as another part of speech (:func:`used_as_pos`).
    """
    spans = [span for word, span in words if word in forms]
    if len(spans) != 1:
        return None
    start = spans[0][0]
    if start > 0 and text[start - 1] == "`":
        return None
    if pos is not None and not used_as_pos(text, spans[0], pos):
        return None
    return spans[0]


#: Words after which a word is a noun (or an adjective before one), never a verb: "at the meeting", "a run",
#: "their findings". Left out because they also end a clause before a verb: "her" (object: "saw her
#: running"), "that"/"which"/"what" (relative: "the river that runs"), "this" ("this seems").
NOUN_DETERMINERS: frozenset[str] = frozenset((
    "a", "an", "the", "my", "your", "his", "its", "our", "their", "every", "each", "no", "another", "these",
    "those",
))  # fmt: skip
#: Words after which a noun lemma's form is a verb: modals ("will walk", "I'll walk", "don't walk") and
#: subject pronouns ("they walk"; "it walks" only with -s, see :func:`used_as_pos`).
VERB_MARKERS: frozenset[str] = frozenset((
    "will", "would", "can", "could", "shall", "should", "may", "might", "must", "do", "does", "did", "don't",
    "doesn't", "didn't", "won't", "can't", "cannot", "couldn't", "wouldn't", "shouldn't", "i'll", "you'll",
    "he'll", "she'll", "we'll", "they'll", "it'll", "i", "you", "we", "they",
))  # fmt: skip
THIRD_PERSON_SUBJECTS: frozenset[str] = frozenset(("he", "she", "it"))
_PREVIOUS_TOKEN_RE = re.compile(r"([A-Za-z]+(?:['\u2019][A-Za-z]+)?)\s+$")


def used_as_pos(text: str, span: tuple[int, int], pos: str) -> bool:
    """Whether the word at ``span`` can be used as ``pos`` (N, V, A, R), judged from the word before it.

    WordNet examples are often phrases, so a tagger trained on sentences is no better than this rule,
    which only rejects a use when the previous word settles it:

    - a verb lemma's form right after a determiner (:data:`NOUN_DETERMINERS`) is a noun or an adjective
      ("I'll probably see you at the meeting" is no use of the verb *meet*; nor "a run" of *run*);
    - a noun lemma's form right after a modal, a do-form or a subject pronoun (:data:`VERB_MARKERS`), or
      its -s form right after he/she/it, is a verb ("they ship it" is no use of the noun *ship*).

    Adjectives and adverbs have one form, the lemma, and are not checked. A modifier between determiner
    and word ("the weekly meeting") is not caught: the rule is one word deep.
    """
    match = _PREVIOUS_TOKEN_RE.search(text[: span[0]])
    previous = match.group(1).lower().replace("\u2019", "'") if match else ""
    if pos == "V":
        return previous not in NOUN_DETERMINERS
    if pos == "N":
        if previous in VERB_MARKERS:
            return False
        return not (previous in THIRD_PERSON_SUBJECTS and text[span[0] : span[1]].lower().endswith("s"))
    return True


# --------------------------------------------------------------------------------------------------
# Two lemmas, one word: spelling variants and derived forms
# --------------------------------------------------------------------------------------------------

#: British -> American spellings, applied in order to both words before they are compared. Over-applying a
#: rule costs nothing: only whether the two results are equal (or one edit apart) matters.
_SPELLING_RULES: tuple[tuple[str, str], ...] = (
    (r"isation", "ization"), (r"yse(s|d)?$", r"yze\1"), (r"is(e|es|ed|ing|er|ers)$", r"iz\1"),
    (r"our", "or"), (r"ogue$", "og"), (r"([^aeiou])re(s|d)?$", r"\1er\2"), (r"ence$", "ense"),
    (r"^aero", "air"), (r"ae", "e"), (r"oe", "e"), (r"ph", "f"), (r"ough", "ow"), (r"([a-z])\1", r"\1"),
)  # fmt: skip
_MIN_VARIANT_EDIT_LENGTH = 4
_MIN_AFFIX_STEM = 3


def spelling_key(word: str) -> str:
    """``word`` lowercased with British spellings made American and doubled letters single (see
    :data:`_SPELLING_RULES`): colour -> color, recognise -> recognize, centre -> center, travelled ->
    traveled, anaemia -> anemia."""
    key = word.lower()
    for pattern, replacement in _SPELLING_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            # substitution (same length) or an insertion into the shorter word
            return a[i + 1 :] == b[i + 1 :] if len(a) == len(b) else a[i:] == b[i + 1 :]
    return True


def same_word_form(a: str, b: str) -> bool:
    """Whether two lemmas are one word written two ways, so they cannot stand for "different words".

    True when (1) their :func:`spelling_key` is equal (recognize/recognise, color/colour, center/centre,
    traveled/travelled, anemia/anaemia); (2) both have at least 4 letters and their keys are one edit
    apart (gray/grey, woolly/wooly, cockatiel/cockateel); or (3) one begins or ends with the other, of
    at least 3 letters (flash/flashy, working/workings, stressed/distressed, circle/encircle: derived
    forms that share the word's first or last tokens). Different words of one meaning stay apart (breathe/respire, jam/ram).
    """
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    key_a, key_b = spelling_key(a), spelling_key(b)
    if key_a == key_b:
        return True
    if min(len(a), len(b)) >= _MIN_VARIANT_EDIT_LENGTH and _edit_distance_at_most_one(key_a, key_b):
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= _MIN_AFFIX_STEM and (longer.startswith(shorter) or longer.endswith(shorter))


# --------------------------------------------------------------------------------------------------
# a / an
# --------------------------------------------------------------------------------------------------

#: Words spelt with a vowel but spoken with a consonant first ("a unique", "a one-off", "a euro").
_CONSONANT_SOUND_PREFIXES: tuple[str, ...] = (
    "uni", "use", "usu", "usa", "uti", "ure", "uro", "ubiq", "uvu", "eu", "ewe", "one", "once", "ouija",
)  # fmt: skip
#: Words spelt with a consonant but spoken with a vowel first (a silent h: "an hour", "an honest").
_VOWEL_SOUND_PREFIXES: tuple[str, ...] = ("hour", "honest", "honor", "honour", "heir")
_ARTICLE_BEFORE_RE = re.compile(r"(?<![A-Za-z])(an|a)(\s+)$", re.IGNORECASE)


def indefinite_article(word: str) -> str:
    """``"an"`` when ``word`` is spoken with a vowel first, else ``"a"``, by its spelling and two word lists."""
    lower = word.lower()
    if lower.startswith(_VOWEL_SOUND_PREFIXES):
        return "an"
    if lower.startswith(_CONSONANT_SOUND_PREFIXES):
        return "a"
    return "an" if lower[:1] in _VOWELS else "a"


def replace_word(text: str, span: tuple[int, int], word: str) -> tuple[str, tuple[int, int], bool]:
    """``text`` with ``span`` replaced by ``word``, keeping a capital, and the article before it agreeing.

    An "a"/"an" right before the span is switched when the new word takes the other article than the
    old one ("wore a dirty shirt" -> "wore an unclean shirt" and back, "An" stays capitalised). When both
    words take the same article by :func:`indefinite_article` the writer's article is kept as it is
    ("an historic"). Returns the new text, the new word's span and whether the article was switched.
    """
    start, end = span
    old = text[start:end]
    new = word.capitalize() if old[:1].isupper() else word
    before, after = text[:start], text[end:]
    switched = False
    match = _ARTICLE_BEFORE_RE.search(before)
    if match and indefinite_article(old) != indefinite_article(new):
        article = indefinite_article(new)
        if match.group(1)[0].isupper():
            article = article.capitalize()
        before = before[: match.start()] + article + match.group(2)
        switched = True
    return before + new + after, (len(before), len(before) + len(new)), switched
