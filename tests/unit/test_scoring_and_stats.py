import torch

from secateur.calibration.stats import HessianStats, InputCollector, InputStats, column_sum_of_squares
from secateur.scoring.magnitude import Magnitude
from secateur.scoring.wanda import Wanda


def test_column_sum_of_squares_matches_float64_for_every_dtype():
    torch.manual_seed(0)
    x = torch.randn(300, 17) * 10
    expected = (x.double() ** 2).sum(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xd = x.to(dtype)
        got = column_sum_of_squares(xd)
        assert got.dtype == torch.float32
        ref = (xd.double() ** 2).sum(0)
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(column_sum_of_squares(x).double(), expected, rtol=1e-5, atol=1e-3)


def test_wanda_score_is_abs_weight_times_input_norm():
    torch.manual_seed(0)
    w = torch.randn(5, 7)
    x = torch.randn(50, 7)
    stats = InputStats(torch.zeros(7))
    stats.add(x)
    expected = w.abs() * x.norm(dim=0)[None, :]
    torch.testing.assert_close(Wanda().score(w, stats), expected)
    assert stats.tokens == 50


def test_magnitude_score():
    w = torch.tensor([[-3.0, 1.0], [0.5, -0.25]], dtype=torch.float16)
    out = Magnitude().score(w)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, w.abs().float())


def test_collector_sees_shared_inputs_once_and_removes_hooks():
    torch.manual_seed(0)
    a, b, c = torch.nn.Linear(6, 3), torch.nn.Linear(6, 4), torch.nn.Linear(6, 2)
    x1, x2 = torch.randn(2, 5, 6), torch.randn(1, 5, 6)
    collector = InputCollector({"a": a, "b": b, "c": c})
    with collector.attached() as stats:
        for x in (x1, x2):
            a(x), b(x)  # same tensor object into both, as q/k/v receive it
            c(x.clone())  # equal values, another tensor: its own statistics
    flat = torch.cat([x1.reshape(-1, 6), x2.reshape(-1, 6)])
    for name in ("a", "b", "c"):
        torch.testing.assert_close(stats[name].sum_sq, (flat**2).sum(0))
        assert stats[name].tokens == 15
    assert stats["a"] is stats["b"] and stats["c"] is not stats["a"]
    assert not a._forward_pre_hooks and not b._forward_pre_hooks


def test_hessian_is_twice_the_mean_outer_product_summed_in_fp64():
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 2).to(torch.bfloat16)
    x = torch.randn(3, 7, 5).to(torch.bfloat16)
    collector = InputCollector({"l": linear}, HessianStats.for_module)
    with collector.attached() as stats:
        linear(x[:2])
        linear(x[2:])
    flat = x.reshape(-1, 5).double()
    expected = 2 * flat.T @ flat / 21
    assert stats["l"].total.dtype == torch.float64 and stats["l"].tokens == 21
    assert stats["l"].hessian().dtype == torch.float32
    torch.testing.assert_close(stats["l"].hessian().double(), expected, rtol=1e-5, atol=1e-5)


def test_statistics_do_not_depend_on_how_batches_are_shared_out():
    """What a 2-process run relies on: batches summed in another order and in two parts (each part
    summed on its own, then the parts added, as all_sum does) give the very same fp32 statistics."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 3)
    batches = [torch.randn(2, 97, 64) * 30 for _ in range(8)]

    def gathered(make, parts):
        totals = []
        for part in parts:
            collector = InputCollector({"l": linear}, make)
            with collector.attached() as stats:
                for batch in part:
                    linear(batch)
            totals.append(stats["l"])
        first = totals[0]
        for other in totals[1:]:
            first.total += other.total
            first.tokens += other.tokens
        return first

    one = [batches]
    shared = [batches[0::2], batches[1::2][::-1]]
    for make, read in (
        (InputStats.for_module, lambda s: s.sum_sq),
        (HessianStats.for_module, lambda s: s.hessian()),
    ):
        a, b = read(gathered(make, one)), read(gathered(make, shared))
        assert a.dtype == torch.float32 and torch.equal(a, b)


def test_ria_scores_by_hand():
    from secateur.scoring.ria import ria_scores

    weight = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    sum_sq = torch.tensor([16.0, 81.0])  # ‖X‖ = 4, 9: powers 0.5 -> 2, 3
    row = torch.tensor([[1 / 3, 2 / 3], [3 / 7, 4 / 7]])
    column = torch.tensor([[1 / 4, 2 / 6], [3 / 4, 4 / 6]])
    expected = (row + column) * torch.tensor([2.0, 3.0])
    torch.testing.assert_close(ria_scores(weight, sum_sq), expected)
