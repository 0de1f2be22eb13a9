"""How a layer's solves are shared out over processes (secateur.distributed.share_work)."""

from unittest import mock

from secateur import distributed


def test_one_process_does_every_job():
    assert distributed.share_work([5.0, 1.0, 3.0]) == [0, 0, 0]


def test_costliest_first_each_to_the_least_loaded_rank():
    # SmolLM2's seven Linears (rows x cols + cols^2, in millions): q k v o gate up down
    costs = [0.66, 0.44, 0.44, 0.66, 1.21, 1.21, 3.24]
    with mock.patch.object(distributed, "world_size", return_value=2):
        owners = distributed.share_work(costs)
    assert owners == [1, 0, 0, 1, 1, 1, 0]  # down + k + v: 4.12 on rank 0; q, o, gate, up: 3.74
    loads = [sum(c for c, o in zip(costs, owners, strict=True) if o == r) for r in (0, 1)]
    assert max(loads) < sum(costs) * 0.6  # far closer to half than one process doing it all
    with mock.patch.object(distributed, "world_size", return_value=3):
        assert sorted(set(distributed.share_work(costs))) == [0, 1, 2]
