"""Stop strings: held back while they may still match, never emitted once they do."""

from __future__ import annotations

from macllm_app.core.engines.prompt.stop_strings import StopMatcher, finish_stream


def run(stops: list[str], pieces: list[str]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    out = []
    for piece in pieces:
        out.append(matcher.feed(piece))
        if matcher.stopped:
            return out, True
    out.append(matcher.flush())
    return out, False


def test_no_stops_passes_through() -> None:
    assert run([], ["a", "b"]) == (["a", "b", ""], False)


def test_stop_split_across_pieces() -> None:
    out, stopped = run(["###"], ["Hello #", "#", "# more"])
    assert stopped
    assert "".join(out) == "Hello "
    assert out[0] == "Hello "  # the "#" is held back


def test_false_alarm_is_released() -> None:
    out, stopped = run(["###"], ["a #", "#b", "c"])
    assert not stopped
    assert "".join(out) == "a ##bc"


def test_earliest_of_several_stops() -> None:
    out, stopped = run(["END", "\n\n"], ["one\n\ntwo END"])
    assert stopped
    assert "".join(out) == "one"


def test_held_text_flushed_at_end() -> None:
    out, stopped = run(["STOP"], ["go ST"])
    assert not stopped
    assert out == ["go ", "ST"]


def test_finish_flushes_or_matches() -> None:
    matcher = StopMatcher(["<end>"])
    assert matcher.feed("x <en") == "x "
    assert matcher.finish("d>") == ("", True)
    matcher = StopMatcher(["<end>"])
    assert matcher.feed("x <en") == "x "
    assert matcher.finish("") == ("<en", False)


def test_finish_stream_after_the_token_loop() -> None:
    assert finish_stream(None, "tail") == ("tail", False)
    matcher = StopMatcher(["<end>"])
    assert matcher.feed("x <en") == "x "
    assert finish_stream(matcher, "d>") == ("", True)
    matcher = StopMatcher(["<end>"])
    assert matcher.feed("x <end>") == "x "
    assert finish_stream(matcher, "rest") == ("rest", False)  # already stopped: as it is
    matcher = StopMatcher(["<end>"])
    assert matcher.feed("x <en") == "x "
    assert finish_stream(matcher, "") == ("<en", False)


def test_matches_a_whole_text_search_for_random_splits() -> None:
    import random

    rng = random.Random(7)
    stops = ["ab", "bca", "c"]
    for _ in range(500):
        full = "".join(rng.choice("abxy ") for _ in range(rng.randint(0, 20)))
        cuts = sorted(rng.sample(range(len(full) + 1), k=min(3, len(full) + 1)))
        pieces = [full[i:j] for i, j in zip([0, *cuts], [*cuts, len(full)], strict=True)]
        out, stopped = run(stops, pieces)
        hits = [full.find(s) for s in stops if s in full]
        assert stopped == bool(hits)
        assert "".join(out) == (full[: min(hits)] if hits else full)
