"""The chaos suite's checks, on small hand-made recordings."""

from __future__ import annotations

from tests.chaos import checks


def rows(*events: tuple[str, str, int, str, int]) -> list[checks.Row]:
    """(pid, shard, seq, key, version) in file order."""
    return [checks.Row(i, float(i), p, s, q, k, v) for i, (p, s, q, k, v) in enumerate(events)]


def test_lost_changes() -> None:
    got = rows(("1", "s", 1, "a", 1), ("1", "s", 2, "a", 3))
    assert checks.lost_changes(got, {"a": 3}) == 1
    assert checks.lost_changes(got, {"a": 1}) == 0


def test_a_replayed_suffix_is_not_an_order_violation_but_a_new_old_version_is() -> None:
    replay = rows(("1", "s", 1, "a", 1), ("1", "s", 2, "a", 2), ("2", "s", 1, "a", 1),
                  ("2", "s", 2, "a", 2), ("2", "s", 3, "a", 3))  # fmt: skip
    assert checks.order_violations(replay) == 0
    assert checks.order_violations(rows(("1", "s", 2, "a", 2), ("1", "s", 1, "a", 1))) == 1


def test_duplicates_are_explained_by_another_process_or_a_failure() -> None:
    got = rows(("1", "s", 1, "a", 1), ("2", "s", 1, "a", 1), ("2", "s", 1, "a", 1))
    assert checks.duplicates(got, []) == (2, 1)
    assert checks.duplicates(got, [(1, "2", "s")]) == (2, 1)  # before the first: no excuse
    assert checks.duplicates(got, [(2, "2", "s")]) == (2, 1)  # at the line itself: neither
    explained = rows(("1", "s", 1, "a", 1), ("x", "-", 0, "-", 0), ("1", "s", 1, "a", 1))
    assert checks.duplicates([explained[0], explained[2]], [(1, "1", "s")]) == (1, 0)


def test_child_before_parent() -> None:
    fine = rows(("1", "p", 1, "a", 1), ("1", "c", 5, "a", 2))
    assert checks.child_before_parent(fine, {"c": "p"}) == 0
    bad = rows(("1", "c", 5, "a", 2), ("1", "p", 1, "a", 1))
    assert checks.child_before_parent(bad, {"c": "p"}) == 1


def test_a_checkpoint_after_another_owner_initialized_is_stale() -> None:
    rec = checks.parse([
        "I 1.0 w1 11 s TRIM_HORIZON",
        "I 2.0 w2 22 s 5",
        "C 3.0 3.1 w1 11 s 7 ok",
        "C 3.0 3.1 w2 22 s 7 ok",
        "C 3.5 3.6 w1 11 s 8 refused",
    ])  # fmt: skip
    assert checks.stale_checkpoints_accepted(rec) == 1
    assert rec.failures == [(4, "11", "s")]


def test_takeover_gap_follows_descendants() -> None:
    got = rows(("1", "p", 1, "a", 1), ("2", "c", 2, "a", 2))  # times 0.0 and 1.0
    stop = checks.Stop(0.5, "1", "SIGKILL")
    assert checks.takeover_gaps(got, [stop], {"c": "p"})["SIGKILL"] == 0.5


def test_broken_rules_name_the_figure() -> None:
    values = {name: 0 for name in checks.RULES}
    assert checks.broken_rules(values) == []
    values["lost changes"] = 3
    assert checks.broken_rules(values)[0].startswith("lost changes = 3")
