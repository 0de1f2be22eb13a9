"""The `secateur prune` command line the CLI tests share: a tiny model, the test corpus, tiny sizes."""

from __future__ import annotations


def prune_args(model, corpus, *extra: str, nsamples: int = 4, seqlen: int = 32) -> list[str]:
    """`prune --model M --dataset C --nsamples N --seqlen S`, then `extra` (output, method, ...)."""
    base = ["prune", "--model", str(model), "--dataset", str(corpus)]
    return [*base, "--nsamples", str(nsamples), "--seqlen", str(seqlen), *extra]


def compare_args(model, corpus, *extra: str, nsamples: int = 4, seqlen: int = 32) -> list[str]:
    """`compare --model M --dataset C --nsamples N --seqlen S`, then `extra` (recipes, output, ...)."""
    base = ["compare", "--model", str(model), "--dataset", str(corpus)]
    return [*base, "--nsamples", str(nsamples), "--seqlen", str(seqlen), *extra]


def assert_one_line_error(stderr: str, *fragments: str) -> str:
    """The error is one line, the last one, with no traceback (progress notes may come before it)."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("secateur: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_refused(capsys, argv: list, *fragments: str, out=None) -> str:
    """Bad input: exit 2, one line naming the problem, and nothing written at `out` (nor beside it)."""
    from pathlib import Path

    from secateur.cli.main import main

    assert main([str(arg) for arg in argv]) == 2
    line = assert_one_line_error(capsys.readouterr().err, *fragments)
    if out is not None:
        out = Path(out)
        assert not out.exists(), out
        if out.parent.exists():
            assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return line
