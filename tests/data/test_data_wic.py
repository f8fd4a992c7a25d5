"""WiC reading and detokenisation with character spans."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pseval.data.wic import WIC_SPLITS, detokenize, read_wic_split, wic_root
from pseval.errors import DataError

WIC_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wic"


@pytest.mark.parametrize(
    ("tokenised", "natural"),
    [
        ("It 's a narrow defeat .", "It's a narrow defeat."),
        ("Do n't fuss , they wo n't mind !", "Don't fuss, they won't mind!"),
        ("I 've got it ; you 'll see : it 's fine ?", "I've got it; you'll see: it's fine?"),
        (
            'John Henry said , " A man ai n\'t nothing but a man . " .',
            'John Henry said, "A man ain\'t nothing but a man.".',
        ),
        (
            'Pat pushed the button marked " shred " on the blender .',
            'Pat pushed the button marked "shred" on the blender.',
        ),
        ("` smog ' is a blend of ` smoke ' and ` fog ' .", "`smog' is a blend of `smoke' and `fog'."),
        ("The marketing rule ' nude sells ' spread .", "The marketing rule 'nude sells' spread."),
        ("Used her parents ' influence .", "Used her parents' influence."),
        ("I have permission . ' .", "I have permission.'."),
        ("The word “ fifteen ” , the numeral “ 15 ” .", "The word “fifteen”, the numeral “15”."),
        ("Tickets are $ 5 per head , 50 % off .", "Tickets are $5 per head, 50% off."),
        ("The occurrence ( or presence ) of life [ sic ] .", "The occurrence (or presence) of life [sic]."),
        ("A well - known portmanteau -- really .", "A well - known portmanteau -- really."),
        ("Love is a bodily infirmity . . . which", "Love is a bodily infirmity... which"),
        ("On the one hand ... , but", "On the one hand..., but"),
        ("I 'm gon na go ; I got ta go .", "I'm gonna go; I gotta go."),
        ("This food ′s gone off .", "This food′s gone off."),
        ("Proved beyond peradventure . — South .", "Proved beyond peradventure. — South."),
        ("", ""),
    ],
)
def test_detokenize_rules(tokenised: str, natural: str) -> None:
    tokens = tokenised.split()
    detok = detokenize(tokens)
    assert detok.text == natural
    assert len(detok.offsets) == len(tokens)
    for token, (start, end) in zip(tokens, detok.offsets, strict=True):
        assert detok.text[start:end] == token


def test_offsets_hold_every_token_of_every_wic_sentence() -> None:
    for split in WIC_SPLITS:
        for record in read_wic_split(split):
            for tokens in (record.tokens_1, record.tokens_2):
                detok = detokenize(tokens)
                starts = [s for s, _ in detok.offsets]
                assert starts == sorted(starts)
                for token, (start, end) in zip(tokens, detok.offsets, strict=True):
                    assert detok.text[start:end] == token
                assert "  " not in detok.text
                assert detok.text == detok.text.strip()


def test_split_sizes_and_labels() -> None:
    sizes = {split: len(read_wic_split(split)) for split in WIC_SPLITS}
    assert sizes == {"train": 5428, "dev": 638, "test": 1400}
    for split in WIC_SPLITS:
        labels = Counter(r.label for r in read_wic_split(split))
        assert labels[0] == labels[1] == sizes[split] // 2


def test_first_test_pair() -> None:
    record = read_wic_split("test")[0]
    assert record.id == "wic-test-0000"
    pair = record.to_word_pair()
    assert pair.id == "wic-test-0000"
    assert (pair.word, pair.pos, pair.label, pair.split, pair.source) == ("defeat", "N", 1, "test", "wic")
    assert pair.context_1 == "It was a narrow defeat."
    assert pair.context_2 == "The army's only defeat."
    assert pair.context_1[slice(*pair.span_1)] == "defeat"
    assert pair.context_2[slice(*pair.span_2)] == "defeat"


@pytest.mark.parametrize(
    ("index", "word", "target_1"),
    [
        (1, "groom", "Groom"),  # capitalised at the start of the sentence
        (65, "hold", "held"),  # irregular inflection
        (188, "have", "'ve"),  # clitic target: "I've"
    ],
)
def test_span_is_the_inflected_token(index: int, word: str, target_1: str) -> None:
    record = read_wic_split("test")[index]
    assert record.word == word
    pair = record.to_word_pair()
    texts = {pair.context_1[slice(*pair.span_1)], pair.context_2[slice(*pair.span_2)]}
    assert target_1 in texts
    assert pair.id == f"wic-test-{index:04d}"


def test_every_pair_converts() -> None:
    for split in WIC_SPLITS:
        for record in read_wic_split(split):
            pair = record.to_word_pair()
            assert pair.context_1[slice(*pair.span_1)] == record.tokens_1[record.index_1]
            assert pair.context_2[slice(*pair.span_2)] == record.tokens_2[record.index_2]


def test_vendored_copy_matches_release() -> None:
    if not WIC_DIR.is_dir():
        pytest.skip("the shared WiC release is not available")
    root = Path(str(wic_root()))
    for name in [f"{s}.{kind}.txt" for s in WIC_SPLITS for kind in ("data", "gold")] + ["README.txt"]:
        assert (root / name).read_bytes() == (WIC_DIR / name).read_bytes()
    assert (root / "NOTICE.md").is_file()


def _write_split(folder: Path, data: str, gold: str, split: str = "test") -> Path:
    (folder / f"{split}.data.txt").write_text(data, encoding="utf-8")
    (folder / f"{split}.gold.txt").write_text(gold, encoding="utf-8")
    return folder


def test_reads_another_folder(tmp_path: Path) -> None:
    _write_split(tmp_path, "bank\tN\t4-1\tWe sat by the bank .\tThe bank closed .\n", "F\n")
    (record,) = read_wic_split("test", root=tmp_path)
    assert record.label == 0
    pair = record.to_word_pair()
    assert pair.context_1 == "We sat by the bank."
    assert pair.span_1 == (14, 18)


@pytest.mark.parametrize(
    ("data", "gold", "message"),
    [
        ("bank\tN\t3-1\tWe sat by the bank .\n", "T\n", "fields"),
        ("bank\tN\t3_1\tWe sat by the bank .\tThe bank .\n", "T\n", "index field"),
        ("bank\tN\t3-1\tWe sat by the bank .\tThe bank .\n", "X\n", "not T or F"),
        ("bank\tN\t3-1\tWe sat by the bank .\tThe bank .\n", "T\nF\n", "gold labels"),
    ],
)
def test_malformed_files(tmp_path: Path, data: str, gold: str, message: str) -> None:
    _write_split(tmp_path, data, gold)
    with pytest.raises(DataError, match=message):
        read_wic_split("test", root=tmp_path)


def test_missing_file_and_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing"):
        read_wic_split("test", root=tmp_path)
    with pytest.raises(DataError, match="unknown WiC split"):
        read_wic_split("validation")


def test_index_out_of_range(tmp_path: Path) -> None:
    _write_split(tmp_path, "bank\tN\t9-1\tWe sat .\tThe bank .\n", "T\n")
    (record,) = read_wic_split("test", root=tmp_path)
    assert not record.indices_valid
    with pytest.raises(DataError, match="wic-test-0000"):
        record.to_word_pair()
