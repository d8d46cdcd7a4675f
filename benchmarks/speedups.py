"""A/B timings of candidate labcore speed-ups, applied here by patching (labcore itself is not edited).

    python benchmarks/speedups.py [--threads 1] [--rounds 6] [--chunk 3] [--variants baseline,gradvar_off,...]

Every variant gets its own Trainer on the default preset (grpo, arithmetic, P=8 x K=4); the variants take turns,
`--chunk` steps at a time for `--rounds` rounds, so a slow spell on this shared machine hits them all alike.
Medians per variant (the first chunk of each is warm-up), and the saving against `baseline`.

Variants:
- baseline            the default preset as shipped (grad variance on).
- gradvar_off         `run.grad_variance = false`: the most a cheaper variance estimate could save.
- gradvar_every_5     the variance estimate on every 5th step only (a proposed `run.grad_variance_every`).
- mask_right_pad      drop the attention mask when no row is left-padded (right padding after EOS cannot change
                      the log-prob of an earlier token under a causal mask); the model then skips building a 4-D
                      mask. Checked: log-probs equal to the baseline's within 1e-5.
- keep_logits         `logits_to_keep` in `token_logprobs`: the LM head runs on the T+1 last positions only.
- mode_guard          call `model.train()` / `model.eval()` only when the mode changes (each call walks all
                      221 modules, ~1 ms; a step makes four, three of them no-ops).
- fast_reference      the reference policy by toggling the 16 LoRA layers, found once, instead of peft's
                      `disable_adapter()` (which also computes the model's adapter status: ~5 ms per step).
- threads_1           `torch.set_num_threads(1)` while this variant steps.
- combined            gradvar_every_5 + mask_right_pad + keep_logits + mode_guard + fast_reference.
Not a test: it measures, it asserts nothing (beyond the log-prob check printed with the table).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import labcore.trainer as T  # noqa: E402
from labcore.config import apply, load_preset  # noqa: E402
from labcore.rollout import Batch, _positions, token_logprobs  # noqa: E402

ORIGINAL_TOKEN_LOGPROBS = token_logprobs


# ---------------------------------------------------------------------------------------------- the patches

def right_padded_only(attn: torch.Tensor) -> bool:
    """True when every row is ones then zeros (no left padding). Shape: (B, L)."""
    return bool((attn.cummin(dim=1).values == attn).all())


@contextmanager
def mask_right_pad(trainer):
    """Pass attention_mask=None to the model when the mask holds right padding only."""
    model = trainer.model
    orig = model.forward

    def forward(*args, attention_mask=None, **kwargs):
        if attention_mask is not None and right_padded_only(attention_mask):
            attention_mask = None
        return orig(*args, attention_mask=attention_mask, **kwargs)

    model.forward = forward
    try:
        yield
    finally:
        del model.forward


def token_logprobs_keep(model, batch: Batch, temperature: float = 1.0, *, with_entropy: bool = False,
                        with_hidden: bool = False) -> dict[str, torch.Tensor]:
    """`labcore.rollout.token_logprobs` with `logits_to_keep`: logits for the T+1 last positions only."""
    attn = batch.attention_mask
    T_ = batch.completion_ids.size(1)
    out = model(input_ids=batch.input_ids, attention_mask=attn, position_ids=_positions(attn),
                output_hidden_states=with_hidden, use_cache=False, logits_to_keep=T_ + 1)
    logits = out.logits[:, :T_].float() / temperature  # (B, T, V): position Tp-1+t predicts completion token t
    logp_all = F.log_softmax(logits, dim=-1)
    result = {"logp": logp_all.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)}
    if with_entropy:
        result["entropy"] = -(logp_all.exp() * logp_all).sum(-1)
    if with_hidden:
        Tp = batch.prompt_ids.size(1)
        result["hidden"] = out.hidden_states[-1][:, Tp - 1: Tp - 1 + T_]
    result["logp_all"] = logp_all
    return result


@contextmanager
def keep_logits(trainer):
    T.token_logprobs = token_logprobs_keep
    try:
        yield
    finally:
        T.token_logprobs = ORIGINAL_TOKEN_LOGPROBS


@contextmanager
def gradvar_every(trainer, every: int = 5):
    orig = trainer.grad_variance

    def sometimes(*args, **kwargs):
        return orig(*args, **kwargs) if trainer.step_count % every == 0 else None

    trainer.grad_variance = sometimes
    try:
        yield
    finally:
        del trainer.grad_variance


@contextmanager
def mode_guard(trainer):
    model = trainer.model
    orig = model.train

    def train(mode: bool = True):
        return model if model.training == mode else orig(mode)

    model.train = train
    try:
        yield
    finally:
        del model.train


@contextmanager
def fast_reference(trainer):
    from peft.tuners.tuners_utils import BaseTunerLayer

    policy = trainer.policy
    layers = [m for m in policy.model.modules() if isinstance(m, BaseTunerLayer)]

    @contextmanager
    def reference():
        for layer in layers:
            layer.enable_adapters(False)
        try:
            yield policy.model
        finally:
            for layer in layers:
                layer.enable_adapters(True)

    policy.reference = reference
    try:
        yield
    finally:
        del policy.reference


@contextmanager
def threads(trainer, n: int = 1):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


VARIANTS = {
    "baseline": ({}, []),
    "gradvar_off": ({"run.grad_variance": False}, []),
    "gradvar_every_5": ({}, [gradvar_every]),
    "mask_right_pad": ({}, [mask_right_pad]),
    "keep_logits": ({}, [keep_logits]),
    "mode_guard": ({}, [mode_guard]),
    "fast_reference": ({}, [fast_reference]),
    "threads_1": ({}, [threads]),
    "combined": ({}, [gradvar_every, mask_right_pad, keep_logits, mode_guard, fast_reference]),
}


# ---------------------------------------------------------------------------------------------- checks + timing

def check_logprobs(model_name: str) -> str:
    """Max |log-prob difference| of mask_right_pad and keep_logits against the shipped code on one sampled batch
    of the length task (its completions differ in length, so the batch has right padding)."""
    trainer = T.Trainer(apply(load_preset("grpo"), {"model.policy": model_name, "rollout.task": "length",
                                                     "rollout.max_new_tokens": 12}))
    rows = trainer.task.make_prompts(trainer.rng, 8)
    batch = trainer.sample(rows, 4)
    with torch.no_grad():
        ref = ORIGINAL_TOKEN_LOGPROBS(trainer.model, batch)["logp"] * batch.mask
        with mask_right_pad(trainer):
            a = ORIGINAL_TOKEN_LOGPROBS(trainer.model, batch)["logp"] * batch.mask
        b = token_logprobs_keep(trainer.model, batch)["logp"] * batch.mask
        for p in trainer.params:  # move the adapter off zero so the reference differs from the policy
            p.add_(0.05 * torch.randn_like(p))
        with trainer.policy.reference():
            r0 = ORIGINAL_TOKEN_LOGPROBS(trainer.model, batch)["logp"] * batch.mask
        pol = ORIGINAL_TOKEN_LOGPROBS(trainer.model, batch)["logp"] * batch.mask
        with fast_reference(trainer), trainer.policy.reference():
            r1 = ORIGINAL_TOKEN_LOGPROBS(trainer.model, batch)["logp"] * batch.mask
        pol1 = ORIGINAL_TOKEN_LOGPROBS(trainer.model, batch)["logp"] * batch.mask
    left = not right_padded_only(batch.attention_mask)
    right = bool((batch.mask == 0).any())
    return (f"log-prob check on one length-task batch (right padding: {right}, left padding: {left}): "
            f"mask_right_pad max |diff| "
            f"{float((a - ref).abs().max()):.2e}, keep_logits max |diff| {float((b - ref).abs().max()):.2e}; "
            f"fast_reference max |diff| {float((r1 - r0).abs().max()):.2e} (reference) and "
            f"{float((pol1 - pol).abs().max()):.2e} (policy after it; the policy differs from the reference by "
            f"{float((pol - r0).abs().max()):.2e})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--chunk", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--model", default="tiny")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [v for v in args.variants.split(",") if v]
    if "baseline" not in names:
        names.insert(0, "baseline")
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"# Speed-up candidates: default preset, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; {args.rounds} rounds x {args.chunk} steps per variant\n")
    print(check_logprobs(args.model) + "\n")
    trainers = {}
    for name in names:
        overrides, _ = VARIANTS[name]
        trainers[name] = T.Trainer(apply(load_preset("grpo"), {"model.policy": args.model, **overrides}))
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            trainer = trainers[name]
            with ExitStack() as stack:
                for patch in VARIANTS[name][1]:
                    stack.enter_context(patch(trainer))
                for _ in range(args.chunk):
                    t = time.perf_counter()
                    trainer.train_step()
                    if r > 0:
                        times[name].append(time.perf_counter() - t)
    # The fastest quarter of a variant's steps is the least disturbed by other processes: its mean (q25 below)
    # is the steadier figure on a busy machine; the median is what a user sees.
    def q25(xs):
        xs = sorted(xs)
        return statistics.mean(xs[: max(1, len(xs) // 4)])

    base, base_q = statistics.median(times["baseline"]), q25(times["baseline"])
    print("| variant | median step ms | saving (median) | fastest-quarter mean ms | saving (fastest quarter) "
          "| min - max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        m, q = statistics.median(times[name]), q25(times[name])
        print(f"| {name} | {m * 1000:.1f} | {(1 - m / base) * 100:+.0f}% | {q * 1000:.1f} | {(1 - q / base_q) * 100:+.0f}% "
              f"| {min(times[name]) * 1000:.0f} - {max(times[name]) * 1000:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
