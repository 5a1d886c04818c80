"""One writer per shard: a second attempt waits while a live one holds the shard, writes nothing if
that one finished it, takes over from a dead one, and an attempt whose claim was taken stops."""
import os
import threading
import time

import pytest

from retmask.claims import Attempt, ClaimLost, ShardClaim, this_attempt


def test_a_second_attempt_waits_for_the_live_holder_and_writes_nothing_once_it_finished(tmp_path, monkeypatch):
    monkeypatch.setattr("retmask.claims.POLL_S", 0.05)
    claim = ShardClaim(tmp_path / "claims", 0)
    first = Attempt("node-a", 101, "243_0", time.time())
    second = Attempt("node-b", 202, "250_0", time.time())
    alive = {first.key: True}
    done = threading.Event()
    assert claim.take(first, lambda other: alive.get(other.key, False), done.is_set)
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(claim.take(second, lambda o: alive.get(o.key, False),
                                                                       done.is_set)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and claim.holder() == first  # it waits: the first still runs
    done.set()  # the first finishes the shard (its marker) and ends
    claim.release(first)
    waiter.join(5)
    assert outcome == [False]  # nothing to write: the shard is done


def test_a_dead_holder_is_taken_over_and_then_can_write_no_more(tmp_path):
    claim = ShardClaim(tmp_path / "claims", 3)
    old = Attempt("node-a", 101, "243_3", time.time())
    new = this_attempt("251_3")
    assert claim.take(old, lambda other: True, lambda: False)
    assert claim.take(new, lambda other: False, lambda: False)  # the scheduler says the old one ended
    with pytest.raises(ClaimLost, match="shard 3 is now held by job 251_3, pid .* not by this attempt"):
        claim.check(old)
    claim.check(new)
    claim.release(old)  # not the holder: releases nothing
    assert claim.holder() == new and new.pid == os.getpid()
