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


def test_a_checkpoint_after_a_newer_holder_initialized_is_stale() -> None:
    rec = checks.parse([
        "I 1.0 w1 11 s TRIM_HORIZON 3",
        "I 2.0 w2 22 s 5 9",
        "C 3.0 3.1 w1 11 s 7 ok 3",
        "C 3.0 3.1 w2 22 s 7 ok 9",
        "C 3.5 3.6 w1 11 s 8 refused 3",
    ])  # fmt: skip
    assert checks.stale_checkpoints_accepted(rec) == 1
    assert rec.failures == [(4, "11", "s")]


def test_an_old_holder_initializing_late_does_not_make_the_new_holders_checkpoints_stale() -> None:
    """The false alarm of issue 15: w1 took the lease (counter 5) while the shard waited
    for its parent, w2 stole it (counter 8) and initialized, then w1 initialized too."""
    rec = checks.parse([
        "I 10.0 w2 22 s TRIM_HORIZON 8",
        "I 10.5 w1 11 s TRIM_HORIZON 5",
        "C 11.0 11.1 w2 22 s 7 ok 8",
        "C 11.2 11.3 w1 11 s 7 refused 5",
    ])  # fmt: skip
    assert checks.stale_checkpoints_accepted(rec) == 0
    assert checks.inits_of_lost_leases(rec) == 1


def test_overlapping_deliveries_after_a_steal() -> None:
    def row(index: int, pid: str, lease: int) -> checks.Row:
        return checks.Row(index, float(index), pid, "s", index, "k", index, lease)

    handed_over = [row(0, "1", 4), row(1, "1", 4), row(2, "2", 9), row(3, "2", 9)]
    assert checks.overlapping_deliveries(handed_over, {("s", 9)}) == 0
    interleaved = [row(0, "1", 4), row(1, "2", 9), row(2, "1", 4)]
    assert checks.overlapping_deliveries(interleaved, {("s", 9)}) == 1
    assert checks.overlapping_deliveries(interleaved, set()) == 0  # not a steal: a failure


def test_lease_log_lines_give_the_steals_and_handoffs() -> None:
    log = checks.parse_lease_log(
        "INFO asked w1 to hand over lease s1 (counter 4)\n"
        "INFO took lease s1, handed over by w1 after 0.84s (counter 6)\n"
        "INFO asked w3 to hand over lease s2 (counter 7)\n"
        "WARNING took lease s2, handoff from w3 timed out after 5.02s (counter 9)\n"
        "INFO stole from w4 lease s3 (counter 2)\n"
    )
    assert log.asked == 2 and log.steals == {("s1", 6), ("s2", 9), ("s3", 2)}
    figures = checks.handoff_figures(log)
    assert figures["handoffs completed / timed out / given up"] == "1 / 1 / 0"
    assert figures["handoff duration p50 / max (s)"] == "0.84 / 0.84"


def test_takeover_gap_follows_descendants() -> None:
    got = rows(("1", "p", 1, "a", 1), ("2", "c", 2, "a", 2))  # times 0.0 and 1.0
    stop = checks.Stop(0.5, "1", "SIGKILL")
    assert checks.takeover_gaps(got, [stop], {"c": "p"})["SIGKILL"] == 0.5


def test_broken_rules_name_the_figure() -> None:
    values = {name: 0 for name in checks.RULES}
    assert checks.broken_rules(values) == []
    values["lost changes"] = 3
    assert checks.broken_rules(values)[0].startswith("lost changes = 3")
