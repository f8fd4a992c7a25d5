"""Progress of long loops: silent by default, reported through the installed reporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pseval import _progress


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def __call__(self, description: str, total: int, unit: str) -> Recorder:
        self.events.append(("start", (description, total, unit)))
        return self

    def advance(self, n: int) -> None:
        self.events.append(("advance", n))

    def close(self) -> None:
        self.events.append(("close", None))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    previous = _progress.set_reporter(rec)
    yield rec
    _progress.set_reporter(previous)


def test_track_reports_sizes_and_closes(recorder: Recorder) -> None:
    assert list(_progress.track([[1, 2], [3]], "work", 3, "rows", size=len)) == [[1, 2], [3]]
    assert recorder.events == [
        ("start", ("work", 3, "rows")),
        ("advance", 2),
        ("advance", 1),
        ("close", None),
    ]


def test_silent_without_reporter() -> None:
    previous = _progress.set_reporter(None)
    try:
        assert list(_progress.track(range(3), "work", 3)) == [0, 1, 2]
    finally:
        _progress.set_reporter(previous)


def test_collection_at_a_new_hook_reports_progress(recorder: Recorder, tiny_llama_loaded, tmp_cache) -> None:  # type: ignore[no-untyped-def]
    from pseval.activations.collect import collect_activations

    class Prompt:
        def __init__(self, ids: list[int]) -> None:
            self.input_ids, self.target_index = ids, len(ids) - 1

    prompts = [Prompt([1, 5 + i, 7, 9]) for i in range(5)]
    collect_activations(tiny_llama_loaded, prompts, ["blocks.0.hook_resid_post"], batch_size=2, cache=False)
    start = recorder.events[0]
    assert start[0] == "start" and "blocks.0.hook_resid_post" in start[1][0] and start[1][1] == 5  # type: ignore[index]
    assert sum(n for kind, n in recorder.events if kind == "advance") == 5  # type: ignore[misc]
    assert recorder.events[-1] == ("close", None)


def test_line_reporter_is_quiet_for_quick_loops(capsys: pytest.CaptureFixture[str]) -> None:
    line = _progress._LineTask("quick", 10, "items")
    for _ in range(10):
        line.advance(1)
    line.close()
    assert capsys.readouterr().err == ""


def test_harvesting_reports_tokens(recorder: Recorder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.activations.test_store import make_store
    from tests.helpers import tiny_loaded, write_word_corpus

    loaded = tiny_loaded("llama", n_layers=2, d_model=32)
    corpus = write_word_corpus(tmp_path / "docs.txt", n_docs=300)
    make_store(loaded, corpus, tmp_path).harvest("blocks.1.hook_resid_post", 200)
    start = recorder.events[0]
    assert start == ("start", ("harvest blocks.1.hook_resid_post", 200, "tokens"))
    assert sum(n for kind, n in recorder.events if kind == "advance") == 200  # type: ignore[misc]


def test_a_loop_left_with_break_counts_its_last_item(recorder: Recorder) -> None:
    for item in _progress.track([[1, 2], [3], [4, 5, 6]], "work", 6, "rows", size=len):
        if item == [3]:
            break
    assert recorder.events == [
        ("start", ("work", 6, "rows")),
        ("advance", 2),
        ("advance", 1),
        ("close", None),
    ]
