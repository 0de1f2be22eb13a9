"""Instruction data for LoRA recovery: Alpaca records (instruction / input / output) as causal-LM examples.

The prompt is the Alpaca template, the one alpaca-lora and LLM-Pruner's post-training use, so a model
recovered here answers prompts written for those. By default the loss covers only the response
(prompt tokens are labelled -100); `train_on_inputs` trains on the whole text, as alpaca-lora's
default does. Records come from a local .json (a list) or .jsonl file, or a hub dataset with those
columns (yahma/alpaca-cleaned).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from secateur.errors import SecateurError

PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
REQUIRED = ("instruction", "output")
IGNORE = -100  # the label the loss skips


def prompt(record: dict) -> str:
    template = PROMPT_WITH_INPUT if str(record.get("input") or "").strip() else PROMPT_NO_INPUT
    return template.format(instruction=record["instruction"], input=record.get("input") or "")


def _read_local(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecateurError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None


def _is_instruction_list(records: object) -> bool:
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], dict)
        and all(key in records[0] for key in REQUIRED)
    )


def instruction_records(data: str) -> list[dict] | None:
    """The Alpaca records of `data`, or None when it is plain text (a corpus, .txt, text .jsonl)."""
    path = Path(data).expanduser()
    if path.is_file() and path.suffix in (".json", ".jsonl"):
        records = _read_local(path)
        if not _is_instruction_list(records):
            if path.suffix == ".json":
                raise SecateurError(
                    f"{path} must hold a list of records with 'instruction' and 'output' fields (Alpaca)"
                )
            return None  # a text .jsonl: trained on as plain text
        missing = [i for i, r in enumerate(records) if not all(isinstance(r.get(k), str) for k in REQUIRED)]
        if missing:
            raise SecateurError(
                f"{path}: record {missing[0] + 1} lacks a string 'instruction' or 'output'; fix or drop it"
            )
        return records
    if not path.exists() and (path.suffix in (".json", ".jsonl", ".txt") or data.startswith(("/", ".", "~"))):
        raise SecateurError(f"data file {path} does not exist; check the path")
    if path.exists() or "/" not in data:
        return None  # a local text file/folder or an embedded corpus name
    from secateur.registry import REGISTRY

    if REGISTRY.find("hub-dataset", data.lower()) is not None:
        return None
    return _hub_records(data)


def _hub_records(name: str) -> list[dict] | None:
    try:
        from datasets import load_dataset

        table = load_dataset(name, split="train")
    except Exception as exc:  # offline, unknown name, gated dataset: all end the same way for the user
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SecateurError(
            f"could not load dataset {name!r}: {reason}. Offline? Give a local Alpaca .json/.jsonl file"
        ) from None
    if not all(key in table.column_names for key in REQUIRED):
        raise SecateurError(f"hub dataset {name!r} has no 'instruction'/'output' columns; not Alpaca data")
    return [dict(row) for row in table]


def encode(tokenizer, record: dict, cutoff: int, train_on_inputs: bool) -> dict[str, torch.Tensor]:
    """Token ids of prompt + response + EOS (cut to `cutoff`), labels masked on the prompt."""
    head = tokenizer(prompt(record), add_special_tokens=True)["input_ids"]
    tail = tokenizer(record["output"], add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        tail = [*tail, tokenizer.eos_token_id]
    ids = (head + tail)[:cutoff]
    labels = ids if train_on_inputs else ([IGNORE] * len(head) + tail)[:cutoff]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}


class InstructionDataset(torch.utils.data.Dataset):
    def __init__(self, examples: list[dict[str, torch.Tensor]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.examples[index]


def instruction_datasets(
    tokenizer, records: list[dict], cutoff: int, train_on_inputs: bool, val_size: int, seed: int
) -> tuple[InstructionDataset, InstructionDataset]:
    """(train, validation): `val_size` records drawn at random (seeded) are held out."""
    examples = [encode(tokenizer, r, cutoff, train_on_inputs) for r in records]
    examples = [e for e in examples if bool((e["labels"] != IGNORE).any())]  # prompt alone filled cutoff
    if len(examples) <= val_size:
        raise SecateurError(
            f"{len(examples)} usable instruction records, not enough for --val-set-size {val_size}; "
            f"lower it or raise --cutoff-len"
        )
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:val_size])
    train = [e for i, e in enumerate(examples) if i not in held]
    return InstructionDataset(train), InstructionDataset([examples[i] for i in sorted(held)])


class PadCollator:
    """Right-pads a batch to its longest example: pad id for inputs, -100 for labels, 0 in the mask."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        longest = max(len(e["input_ids"]) for e in batch)
        out = {
            "input_ids": torch.full((len(batch), longest), self.pad_id),
            "labels": torch.full((len(batch), longest), IGNORE),
            "attention_mask": torch.zeros(len(batch), longest, dtype=torch.long),
        }
        for row, example in enumerate(batch):
            n = len(example["input_ids"])
            out["input_ids"][row, :n] = example["input_ids"]
            out["labels"][row, :n] = example["labels"]
            out["attention_mask"][row, :n] = 1
        return out
