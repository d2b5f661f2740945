"""kernel/distcc.py: distcc's host list, the environment that puts distcc behind ccache, make -j."""

from __future__ import annotations

import pytest

from zcache_forge.kernel import distcc


def test_host_list_in_distccs_own_syntax():
    assert distcc.parse_hosts("127.0.0.1:3900/4, buildbox  [::1]:4000") == [
        distcc.Host("127.0.0.1", 3900, 4), distcc.Host("buildbox", 3632, 2), distcc.Host("[::1]", 4000, 2)]


@pytest.mark.parametrize("spec", ["", " , ", "a b!", "host:0", "host:70000", "host/0", "@ssh-host"])
def test_bad_host_lists_are_refused(spec):
    with pytest.raises(ValueError):
        distcc.parse_hosts(spec)


def test_ccache_hands_its_misses_to_distcc_with_every_slot_busy():
    env = distcc.make_env("127.0.0.1:3900/4")
    assert env == {"CCACHE_PREFIX": "distcc", "DISTCC_HOSTS": "127.0.0.1:3900/4"}
    assert distcc.jobs("127.0.0.1:3900/4 box/3", local=2) == 7
    assert distcc.jobs("127.0.0.1/1", local=2) == 2
