"""Progressive schedules: parsed with extra columns tolerated; every broken row named before any work."""

import pytest

from secateur.errors import SecateurError
from secateur.recovery.schedule import ScheduleRow, load_schedule, parse_schedule, schedule_csv

SEED_SCHEDULE = """iteration,dense,mid_2_4,topk,dense_to_2_4,mid_2_4_to_topk,epochs
1,0.90,0.10,0.00,0.10,0.00,2
2,0.80,0.10,0.10,0.10,0.10,2
3,0.65,0.20,0.15,0.15,0.05,2
4,0.50,0.30,0.20,0.15,0.05,2
5,0.35,0.45,0.20,0.15,0.00,3
"""


def test_the_reference_schedule_parses_and_round_trips():
    rows = parse_schedule(SEED_SCHEDULE)
    assert [r.iteration for r in rows] == [1, 2, 3, 4, 5]
    assert rows[-1] == ScheduleRow(5, 0.35, 0.45, 0.20, 3.0)
    assert parse_schedule(schedule_csv(rows)) == rows


def test_headers_are_forgiving_about_case_spaces_and_the_nm_alias():
    rows = parse_schedule(" Iteration , DENSE, nm ,topk,epochs\n1, 0.5, 0.5, 0, 0\n\n")
    assert rows == [ScheduleRow(1, 0.5, 0.5, 0.0, 0.0)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1,0.9,0.1,0.1,1\n", "line 2 (iteration 1): dense + mid_2_4 + topk = 1.1, must be 1"),
        ("1,0.8,0.2,0,1\n2,0.9,0.1,0,1\n", "line 3 (iteration 2): dense rises from 0.8 to 0.9"),
        ("1,0.8,0.1,0.1,1\n2,0.8,0.2,0,1\n", "line 3 (iteration 2): topk falls from 0.1 to 0"),
        ("1,0.8,0.2,0,-1\n", "line 2 (iteration 1): epochs -1 must be >= 0"),
        ("1,0.8,0.2,zero,1\n", "line 2: topk 'zero' is not a number"),
        ("1,0.9,0.1,0,1\n1,0.8,0.2,0,1\n", "iteration numbers must increase"),
        ("0,0.9,0.1,0,1\n", "numbered from 1"),
        ("1,1.5,-0.5,0,1\n", "must each lie in [0, 1]"),
        ("", "has a header but no rows"),
    ],
)
def test_broken_rows_get_one_line_naming_the_row(body, message):
    with pytest.raises(SecateurError) as info:
        parse_schedule("iteration,dense,mid_2_4,topk,epochs\n" + body, "schedule.csv")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "schedule.csv" in str(info.value)


def test_missing_columns_and_files_are_named(tmp_path):
    with pytest.raises(SecateurError, match="lacks column"):
        parse_schedule("iteration,dense,topk,epochs\n1,1,0,0\n")
    with pytest.raises(SecateurError, match="is empty"):
        parse_schedule("")
    with pytest.raises(SecateurError, match="does not exist"):
        load_schedule(tmp_path / "nope.csv")
    reference = load_schedule(None)  # shipped in the package: the seed's 5 steps
    assert [(r.dense, r.mid, r.topk, r.epochs) for r in reference] == [
        (0.9, 0.1, 0.0, 2),
        (0.8, 0.1, 0.1, 2),
        (0.65, 0.2, 0.15, 2),
        (0.5, 0.3, 0.2, 2),
        (0.35, 0.45, 0.2, 3),
    ]
