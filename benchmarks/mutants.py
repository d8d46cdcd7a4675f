"""Mutation test of the training step's wiring: one-line bugs planted in labcore, and which the tests catch.

    python benchmarks/mutants.py [--only N,M] [--tests "tests/test_parts.py tests/test_step.py ..."]

Each mutant replaces one line's text in a copy of the repository (the working tree is never touched), then runs
the fast lane of the tests that pin the step (`-m "not slow" -x`); a mutant is caught when they fail. Prints a
table and the share caught. The mutants are the bugs an audit of the step found or could have found: a flipped
sign, a wrong normaliser, a baseline that reads the wrong reward, a filter turned around, a skipped guard.
Not a test: it measures, it asserts nothing (it takes minutes: each mutant runs the tests again).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ("tests/test_parts.py tests/test_losses.py tests/test_kl.py tests/test_advantages.py tests/test_step.py "
         "tests/test_micro_batch.py tests/test_chunked.py")

# (file, text to find (exactly once), replacement, what the bug is)
MUTANTS = [
    ("labcore/parts.py", "return _last_token(mask).to(r.dtype) * r[:, None] - beta * kl_t * mask",
     "return _last_token(mask).to(r.dtype) * r[:, None] + beta * kl_t * mask", "KL per token added, not subtracted"),
    ("labcore/parts.py", "return kl_none(r - beta * (kl_t * mask).sum(1), kl_t, mask, beta)",
     "return kl_none(r + beta * (kl_t * mask).sum(1), kl_t, mask, beta)", "KL per sequence added"),
    ("labcore/parts.py", "return kl_none(r - beta * (kl_t * mask).sum(1), kl_t, mask, beta)",
     "return kl_none(r - beta * kl_t.sum(1), kl_t, mask, beta)", "sequence KL counts padding"),
    ("labcore/parts.py", "return (mask.cumsum(1) == mask.sum(1, keepdim=True)) & mask.bool()",
     "return (mask.cumsum(1) == 1) & mask.bool()", "reward on the first token, not the last"),
    ("labcore/parts.py", "    others = (r * v).sum(1, keepdim=True) - r * v          # (P, K) sum over the scorable others",
     "    others = (r * v).sum(1, keepdim=True)          # (P, K) sum over the scorable others",
     "leave-one-out includes the sample itself"),
    ("labcore/parts.py", "    n = (v.sum(1, keepdim=True) - v).clamp(min=1.0)        # (P, K) how many there are",
     "    n = v.sum(1, keepdim=True).clamp(min=1.0)        # (P, K) how many there are", "leave-one-out divides by K"),
    ("labcore/parts.py", "    v = valid.to(r.dtype)\n    return (r * v).sum(1, keepdim=True) / v.sum(1, keepdim=True).clamp(min=1.0)",
     "    v = torch.ones_like(r)\n    return (r * v).sum(1, keepdim=True) / v.sum(1, keepdim=True).clamp(min=1.0)",
     "unscorable samples enter the group mean"),
    ("labcore/parts.py", "return ((centred ** 2).sum(1, keepdim=True) / (n - 1).clamp(min=1.0)).sqrt()",
     "return ((centred ** 2).sum(1, keepdim=True) / n.clamp(min=1.0)).sqrt()", "biased (N) std"),
    ("labcore/parts.py", "return (r - b) / (scale + eps) if divide else r - b",
     "return (b - r) / (scale + eps) if divide else b - r", "advantage sign flipped"),
    ("labcore/parts.py", "return (r - b) / (scale + eps) if divide else r - b",
     "return (r - b) / (scale + eps)", "eps shrinks unscaled advantages"),
    ("labcore/parts.py", "    return _valid_std(s, v).squeeze(1) < 1e-6", "    return _valid_std(s, v).squeeze(1) > 1e-6",
     "dynamic filter inverted"),
    ("labcore/parts.py", "        keep &= ~flat.repeat_interleave(K)", "        keep &= flat.repeat_interleave(K)",
     "keeps the flat groups"),
    ("labcore/parts.py", "        keep &= eos", "        keep &= ~eos", "masks the finished completions"),
    ("labcore/parts.py", "return mask * (entropy.float() >= threshold).to(mask.dtype)",
     "return mask * (entropy.float() <= threshold).to(mask.dtype)", "trains on the lowest-entropy tokens"),
    ("labcore/parts.py", "    return log_w.exp().clamp(max=cap)", "    return (-log_w).exp().clamp(max=cap)",
     "importance weight inverted"),
    ("labcore/parts.py", "return float(((grads - grads.mean(0)) ** 2).sum() / (G - 1) / G)",
     "return float(((grads - grads.mean(0)) ** 2).sum() / G / G)", "gradient variance normaliser"),
    ("labcore/parts.py", "        r = (r - norm.mean) / (norm.std + 1e-6)", "        r = r - norm.mean",
     "normalisation forgets the std"),
    ("labcore/parts.py", "        norm = RewardNorm(float(r.mean()), float(safe_std(r)))",
     "        norm = RewardNorm(float(r.mean()), float(r.abs().mean()))", "normalises by the wrong spread"),
    ("labcore/parts.py", "    r = r - missing_eos_penalty * (~eos).to(r.dtype)", "    r = r - missing_eos_penalty * eos.to(r.dtype)",
     "penalises the completions that ended"),
    ("labcore/trainer.py", "        kl_t = kl.estimate(old.logp, old.ref_logp, cfg.kl.estimator) * batch.mask",
     "        kl_t = kl.estimate(old.ref_logp, old.logp, cfg.kl.estimator) * batch.mask", "KL arguments swapped"),
    ("labcore/trainer.py", "        flat = parts.flat_groups(scores, valid, K) if K > 1 else None",
     "        flat = parts.flat_groups(seq_r, valid, K) if K > 1 else None", "filter reads the shaped reward"),
    ("labcore/trainer.py", "                if not mask.any():\n                    skipped += 1\n                    continue",
     "                if False:\n                    skipped += 1\n                    continue", "steps on a masked minibatch"),
    ("labcore/trainer.py", "                return (replay_logprobs if batch.logprobs is not None else token_logprobs)(",
     "                return (token_logprobs)(", "reference not computed like the sampler"),
    ("labcore/trainer.py", "            entropy = losses.aggregate(out[\"entropy\"], mask, a.aggregation, max_len)",
     "            entropy = losses.aggregate(out[\"entropy\"], mask, a.aggregation)", "entropy normalised by the batch's T"),
    ("labcore/trainer.py", "            loss = loss - a.entropy_coef * entropy", "            loss = loss + a.entropy_coef * entropy",
     "entropy bonus becomes a penalty"),
    ("labcore/trainer.py", "        self.ema_reward = self._ema(float(seq_r[valid].mean()) if valid.any() else self.ema_reward)",
     "        self.ema_reward = self._ema(float(scores.mean()))", "moving average of the raw task reward"),
    ("labcore/trainer.py", "        if self.live.kl_coef != self._kl_applied:", "        if False:",
     "live KL change dropped"),
    ("labcore/trainer.py", "        return self.shape(r, greedy, norm)[0]", "        return self.shape(r, greedy)[0]",
     "greedy baseline normalised on its own"),
    ("labcore/trainer.py", "            loss = loss + self.kl_ctl.value * kl_loss", "            loss = loss - self.kl_ctl.value * kl_loss",
     "KL in the loss rewarded"),
    ("labcore/trainer.py", "        return adv * mask * valid[:, None], returns", "        return adv * mask, returns",
     "unscorable completions keep an advantage"),
    ("labcore/trainer.py", "        log_w = (old.logp - batch.sampler_logp) * batch.mask",
     "        log_w = (batch.sampler_logp - old.logp) * batch.mask", "sampler and learner swapped"),
    ("labcore/trainer.py", "                    layer.lora_B[\"default\"].weight.zero_()", "                    pass",
     "reference reset leaves the adapter on top"),
    ("labcore/trainer.py", "            self.kl_ctl.value = self._kl_applied = self.live.kl_coef",
     "            self._kl_applied = self.live.kl_coef", "live KL recorded but not applied"),
    # gradient accumulation (algorithm.micro_batch_size) and the chunked head (labcore/chunked.py)
    ("labcore/trainer.py", 'loss = loss * share("seq_mean_token_sum" if seq_level else a.aggregation)',
     "loss = loss * share(a.aggregation)", "a sequence-level loss's micro-batch share taken per token"),
    ("labcore/trainer.py", "kl_loss = kl_loss * share(a.aggregation) if share else kl_loss",
     "kl_loss = kl_loss", "the KL term of each micro-batch normalised on its own"),
    ("labcore/losses.py", "return ((mask > 0).sum(1) > 0).sum().to(mask.dtype).clamp(min=1.0)",
     "return torch.tensor(float(B), dtype=mask.dtype)", "fully masked rows counted in a micro-batch's share"),
    ("labcore/chunked.py", "g = g - g_entropy[s:s + ctx.n, None] * p * (l_all + H)",
     "g = g + g_entropy[s:s + ctx.n, None] * p * (l_all + H)", "the chunked entropy's gradient flipped"),
    ("labcore/chunked.py", "g.scatter_add_(-1, tokens[s:s + ctx.n, None], g_logp[s:s + ctx.n, None])",
     "pass", "the chunked log-prob's gradient misses the taken token's term"),
    ("labcore/chunked.py", "g = (g / ctx.temperature).to(weight.dtype)",
     "g = g.to(weight.dtype)", "the chunked head's gradient ignores the temperature"),
]


def run_tests(root: Path, tests: str) -> bool:
    """True when the tests fail (the mutant is caught)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests.split()]
    return subprocess.run(cmd, cwd=root, capture_output=True).returncode != 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated mutant numbers (1-based)")
    p.add_argument("--tests", default=TESTS)
    args = p.parse_args(argv)
    chosen = [int(i) for i in args.only.split(",") if i] or list(range(1, len(MUTANTS) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(".git", "runs", "__pycache__", "*.egg-info"))
        if run_tests(root, args.tests):
            print("the tests fail without any mutant: fix them first", file=sys.stderr)
            return 2
        print("| # | file | bug | caught | s |\n|---:|---|---|---|---:|")
        caught = 0
        for i in chosen:
            path, old, new, what = MUTANTS[i - 1]
            target = root / path
            original = target.read_text()
            if original.count(old) != 1:
                print(f"| {i} | {path} | {what} | text not found once: the mutant list is stale | |")
                continue
            target.write_text(original.replace(old, new))
            t0 = time.perf_counter()
            try:
                hit = run_tests(root, args.tests)
            finally:
                target.write_text(original)
            caught += hit
            print(f"| {i} | {path} | {what} | {'yes' if hit else '**no**'} | {time.perf_counter() - t0:.0f} |",
                  flush=True)
        print(f"\n{caught} of {len(chosen)} mutants caught ({100 * caught / len(chosen):.0f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
