"""One training step of any recipe: rollout -> rewards -> KL -> advantages -> loss -> update -> metrics.

`Trainer.train_step` is the whole algorithm on one screen; each line calls a small function whose name says
what it does. The recipe's parts (config.algorithm / config.kl) pick the branches. Two update rules: Adam over
epochs x minibatches (every recipe but TRPO), and TRPO's natural-gradient step with a line search.

The critic of value recipes (actor-critic, PPO, TRPO) is a small MLP on the policy's last hidden states, detached:
the value loss trains the critic only and never pulls the LoRA weights (no shared-trunk interference; TRL's PPO
shares the trunk, OpenRLHF and verl use a separate critic model). The reference policy is the same model with
its LoRA adapters disabled.

`grad/variance` is this lab's own metric: the batch is split by prompt into G groups of prompts, the policy-gradient
loss of each is back-propagated on its own, and we report the trace of the covariance of the batch gradient
estimate, (1/G) * (1/(G-1)) * sum_j ||g_j - g_mean||^2 over the LoRA parameters. It costs G small forward and
backward passes (measured: about 45 % of a default step on a 2-core CPU), so it runs every
`run.grad_variance_every` steps (default 5); `run.grad_variance = false` switches it off.
Gradient accumulation: `algorithm.micro_batch_size` splits each minibatch into passes whose losses sum to its own.
Left out: mixed precision on CPU, sequence packing.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from labcore import advantages, kl, losses, parts, rewards, trpo
from labcore.chat import eos_token_ids, render_prompt, uses_chat_template
from labcore.config import Config, check
from labcore.fastpath import fast_decoder
from labcore.rollout import (
    Batch,
    encode_prompts,
    generate,
    replay_logprobs,
    sampling_generator,
    token_logprobs,
)
from labcore.runstore import sample_records


class TrainingError(RuntimeError):
    """A step could not be completed (non-finite loss, a broken reward function). The message says why."""


class RewardError(TrainingError):
    pass


class Critic(nn.Module):
    """V(s_t) from the policy's hidden state at t. Shape: (B, T, H) -> (B, T). Last layer zero-initialised."""

    def __init__(self, hidden: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, width), nn.Tanh(), nn.Linear(width, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.float()).squeeze(-1)


@dataclass
class Live:
    """Knobs a user may turn while a run is going (TensorFlow Playground's 'hot' parameters)."""
    lr: float
    kl_coef: float
    temperature: float


ROLLOUT_GRAPH_BYTES = 256 * 2**20  # the keys and values a rollout's graph may keep (see rollout_is_forward)


def kv_bytes_per_token(config, dtype: torch.dtype) -> int | None:
    """Bytes of keys and values one token leaves in the KV cache, from a Hugging Face config (None if unknown)."""
    try:
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return 2 * config.num_hidden_layers * heads * head_dim * torch.finfo(dtype).bits // 8
    except (AttributeError, TypeError):
        return None


def rollout_graph_fits(config, dtype: torch.dtype, rows: int, prompt_len: int, new_tokens: int) -> bool:
    """Whether the keys and values a sampling loop's graph keeps (every step saves the cache it attended to:
    rows * (T*Tp + T^2/2) token states), plus its full-vocabulary scores (the float32 log-softmax and its exp,
    rows * T * V each, which labcore.chunked spares the other passes), stay under ROLLOUT_GRAPH_BYTES."""
    per_token, T = kv_bytes_per_token(config, dtype), new_tokens
    scores = rows * T * (getattr(config, "vocab_size", 0) or 0) * 8
    return per_token is not None and rows * (T * prompt_len + T * T / 2) * per_token + scores <= ROLLOUT_GRAPH_BYTES


@dataclass
class Old:
    """What the policy, reference and critic said about the sampled batch before the update (no gradients)."""
    logp: torch.Tensor            # (B, T) log pi_old(y_t) at the sampling temperature
    ref_logp: torch.Tensor        # (B, T) log pi_ref(y_t)
    entropy: torch.Tensor         # (B, T)
    logp_all: torch.Tensor | None = None   # (B, T, V) for TRPO's exact KL
    values: torch.Tensor | None = None     # (B, T)
    fresh: dict[str, torch.Tensor] | None = None  # the training forward, graph kept, when it doubles as "old"


@dataclass
class StepResult:
    metrics: dict[str, float]
    samples: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    def __init__(self, cfg: Config, policy=None):
        from labcore.model import load_policy
        from labcore.userfns import task_for

        self.cfg = cfg
        a, m = cfg.algorithm, cfg.model
        random.seed(cfg.run.seed)
        torch.manual_seed(cfg.run.seed)
        self.task = task_for(cfg)  # rollout.task, or your dataset and reward functions
        self.policy = policy or load_policy(
            m.policy, lora_rank=m.lora_rank, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
            lora_targets=[t.strip() for t in m.lora_targets.split(",") if t.strip()] or None,
            device=m.device, seed=cfg.run.seed)
        check(cfg, context_length=getattr(self.policy.model.config, "max_position_embeddings", None))
        self.model, self.tok, self.device = self.policy.model, self.policy.tokenizer, self.policy.device
        self.chat = uses_chat_template(self.tok, cfg.rollout.chat_template, m.policy)
        self.eos_ids = eos_token_ids(self.model, self.tok)  # instruct models end a turn with several
        if a.update == "trpo":  # Fisher-vector products need double backward, which fused CPU attention lacks
            self.model.get_base_model().set_attn_implementation("eager")
        # The LM as a function: labcore.fastpath where it covers the model (same maths, fewer operator calls).
        fast, self.fast_why = (fast_decoder(self.model) if m.fast_forward and a.update != "trpo" else
                               (None, "TRPO needs double backward" if m.fast_forward else "model.fast_forward is off"))
        self.lm = fast or self.model
        self.forward_name = "labcore.fastpath" if fast else f"transformers ({self.fast_why})"
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": self.params, "lr": cfg.optim.lr}]
        self.critic = None
        if parts.BASELINES[a.baseline].needs_critic:
            self.critic = Critic(self.model.config.hidden_size).to(self.device)
            groups.append({"params": list(self.critic.parameters()), "lr": a.value_lr})
        # The fused kernel (one call for all tensors) is AdamW's maths; on the tiny model it halves the step's
        # optimizer time (0.92 -> 0.45 ms for the 32 LoRA tensors).
        fused = self.device.type in ("cpu", "cuda") and self.policy.dtype in (torch.float32, torch.bfloat16)
        self.opt = torch.optim.AdamW(groups, weight_decay=cfg.optim.weight_decay, fused=fused or None)
        self.kl_ctl = (kl.AdaptiveKLController(cfg.kl.coef, cfg.kl.target, cfg.kl.horizon)
                       if cfg.kl.controller == "adaptive" else kl.FixedKLController(cfg.kl.coef))
        self.live = Live(cfg.optim.lr, cfg.kl.coef, cfg.rollout.temperature)
        self.rng = random.Random(cfg.run.seed)
        # Sampling draws on the model's device (a CPU generator is refused for CUDA or MPS tensors); minibatch
        # shuffles draw on the CPU, so the sampling stream does not depend on how the batch is split.
        self.gen = sampling_generator(self.device, cfg.run.seed)
        self.cpu_gen = torch.Generator(device="cpu").manual_seed(cfg.run.seed)
        self._kl_applied = cfg.kl.coef
        self.ema_reward: float | None = None
        self.resampled = 0  # DAPO dynamic sampling: extra rounds the last step drew
        self.step_count = 0
        self.t_start = time.perf_counter()

    # ----------------------------------------------------------------------------------------------- the step

    def train_step(self) -> StepResult:
        """One step of the recipe, as pseudocode: every line is one idea of the algorithm."""
        t0 = time.perf_counter()
        self.apply_live()
        cfg, a, P, K = self.cfg, self.cfg.algorithm, self.cfg.rollout.prompts_per_step, self.cfg.rollout.samples_per_prompt
        rows, batch, scores, per_fn, valid, seen = self.rollout(P, K)    # B = P*K completions, (B,) task reward
        r, norm = self.shape(scores, batch)                               # (B,) EOS / overlong / clip / normalise
        old = self.evaluate(batch)                                        # old and reference log-probs, values
        kl_t = kl.estimate(old.logp, old.ref_logp, cfg.kl.estimator) * batch.mask            # (B, T)
        token_r = parts.KL_PLACEMENTS[cfg.kl.placement](r, kl_t, batch.mask, self.kl_ctl.value)  # (B, T)
        seq_r = token_r.sum(1)                                            # (B,) what the advantage is made of
        adv, returns = self.advantages(rows, seq_r, token_r, old, batch, valid, norm, P, K)      # (B, T)
        flat = parts.flat_groups(scores, valid, K) if K > 1 else None     # (P,) groups without signal
        mask = parts.loss_mask(batch.mask, valid, batch.eos, flat, K, mask_truncated=cfg.rollout.mask_truncated,
                               drop_flat=a.dynamic_filter)                # (B, T) tokens that enter the loss
        mask = parts.top_entropy_mask(old.entropy, mask, a.top_entropy_frac)
        weights = self.is_weights(old, batch)                             # (B, T) sampler/learner correction
        grad_var = self.grad_variance(batch, old, adv, mask, weights, P, K) if self.variance_due() else None
        upd = (self.trpo_update if a.update == "trpo" else self.gradient_update)(batch, old, adv, returns, mask,
                                                                                 weights)
        kl_seq = float(kl_t.sum(1).mean())
        self.kl_ctl.update(kl_seq, batch.mask.size(0))
        self.ema_reward = self._ema(float(seq_r[valid].mean()) if valid.any() else self.ema_reward)
        self.step_count += 1
        metrics = self.metrics(seen, per_fn, batch, old, kl_seq, adv, mask, flat, grad_var, upd, returns, weights,
                               time.perf_counter() - t0)
        if cfg.kl.reset_every and self.step_count % cfg.kl.reset_every == 0:
            self.reset_reference()
        return StepResult(metrics, self.samples(rows, batch, old, kl_t, scores, adv, upd.get("logp"), K))

    # ---------------------------------------------------------------------------------------------- the parts

    def apply_live(self) -> None:
        """lr, beta and temperature as the user set them. A changed beta also resets the adaptive controller's
        value (it then keeps adapting from there): a live change is never silently dropped."""
        self.opt.param_groups[0]["lr"] = self.live.lr
        if self.live.kl_coef != self._kl_applied:
            self.kl_ctl.value = self._kl_applied = self.live.kl_coef

    def mode(self, train: bool) -> None:
        """model.train(train) only when it changes: each call walks every module (~9 ms a step on the tiny model)."""
        if self.model.training != train:
            self.model.train(train)

    def rollout(self, P: int, K: int):
        """P prompts, K completions each, scored: (rows, batch, task scores (B,), per-function means, valid (B,),
        the first round's scores (B,) for the reward chart). With DAPO's dynamic sampling (resample_rounds > 0),
        groups whose task rewards do not vary are replaced by groups of fresh prompts, for up to that many extra
        rounds; flat groups of the first round fill what is still missing (the filter then drops them)."""
        rows = self.prompts(P)
        batch = self.sample(rows, K)
        scores, per_fn, valid = self.score(rows, batch, K)
        rounds = self.cfg.algorithm.resample_rounds
        self.resampled = 0
        if not rounds:
            return rows, batch, scores, per_fn, valid, scores
        pool = [(rows, batch, scores, valid)]
        signal = [~parts.flat_groups(scores, valid, K)]                  # (P,) per round
        while sum(int(s.sum()) for s in signal) < P and self.resampled < rounds:
            self.resampled += 1
            more = self.prompts(P)
            b = self.sample(more, K)
            sc, _, v = self.score(more, b, K)
            pool.append((more, b, sc, v))
            signal.append(~parts.flat_groups(sc, v, K))
        picks = [(i, g) for i, s in enumerate(signal) for g in s.nonzero().flatten().tolist()]
        picks = (picks + [(0, g) for g in (~signal[0]).nonzero().flatten().tolist()])[:P]
        picks.sort()
        parts_rows, parts_batches, parts_scores, parts_valid = [], [], [], []
        for i in sorted({i for i, _ in picks}):
            groups = torch.tensor([g for j, g in picks if j == i])
            idx = (groups[:, None] * K + torch.arange(K)).reshape(-1).to(self.device)
            r, b, sc, v = pool[i]
            parts_rows += [r[g] for g in groups.tolist()]
            parts_batches.append(b.select(idx, k=K))
            parts_scores.append(sc[idx])
            parts_valid.append(v[idx])
        batch = Batch.concat(parts_batches, self.tok.pad_token_id)
        return parts_rows, batch, torch.cat(parts_scores), per_fn, torch.cat(parts_valid), scores

    def prompts(self, P: int) -> list[dict]:
        rows = self.task.make_prompts(self.rng, P)
        if len(rows) != P or any(not str(r.get("prompt", "")).strip() for r in rows):
            raise TrainingError(f"task '{self.task.name}' gave {len(rows)} prompts ({sum(bool(str(r.get('prompt', '')).strip()) for r in rows)} "
                                f"non-empty) where {P} were asked for; a task must return one non-empty prompt per row.")
        return rows

    def encode(self, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt ids and mask (P, Tp), through the chat template when `self.chat` (labcore.chat)."""
        texts = [render_prompt(self.tok, r["prompt"], self.chat) for r in rows]
        return encode_prompts(self.tok, texts, 1, self.device, add_bos=not self.chat)

    def sample(self, rows: list[dict], K: int) -> Batch:
        """K completions per prompt. In a one-pass update the sampling loop doubles as the training forward."""
        ids, attn = self.encode(rows)
        fused = self.rollout_is_forward(rows=len(rows) * K, prompt_len=ids.size(1))
        self.mode(train=fused)
        return generate(self.lm, ids, attn, samples_per_prompt=K, max_new_tokens=self.cfg.rollout.max_new_tokens,
                        eos_id=self.eos_ids, pad_id=self.tok.pad_token_id, temperature=self.live.temperature,
                        top_p=self.cfg.rollout.top_p, generator=self.gen, keep_graph=fused,
                        with_hidden=self.critic is not None)

    def completions(self, completion_ids: torch.Tensor) -> list[str]:
        """(n, T) completion tokens -> n texts (EOS and padding dropped)."""
        eos = torch.tensor(self.eos_ids, device=completion_ids.device)
        ids = completion_ids.masked_fill(torch.isin(completion_ids, eos), self.tok.pad_token_id)
        return [t.strip() for t in self.tok.batch_decode(ids.tolist(), skip_special_tokens=True)]

    def call_rewards(self, rows: list[dict], completions: list[str], eos: list[bool], ids: list[list[int]],
                     K: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Every reward function (labcore.rewards.call_reward_funcs). Returns (B,) weighted sums (NaN: unscorable)
        and per-function means; each row's extra columns, `eos` and `completion_ids` go in as keyword arguments."""
        prompts = [r["prompt"] for r in rows for _ in range(K)]
        columns = {c: [r[c] for r in rows for _ in range(K)] for c in rows[0] if c != "prompt"}
        try:
            total, per_fn = rewards.call_reward_funcs(self.task.reward_funcs, self.task.reward_weights, prompts,
                                                      completions, {"eos": eos, "completion_ids": ids, **columns})
            if self.task.gold is not None:  # held out: logged as reward/gold/mean, never in the reward
                _, gold = rewards.call_reward_funcs([self.task.gold], [1.0], prompts, completions,
                                                    {"eos": eos, "completion_ids": ids, **columns})
                per_fn["gold"] = next(iter(gold.values()))
        except rewards.RewardFnError as e:
            raise RewardError(f"step {self.step_count + 1}: {e}") from e
        return torch.tensor(total, dtype=torch.float32), per_fn

    def score(self, rows: list[dict], batch: Batch, K: int) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Task reward per completion: (B,) with unscorable ones filled by their group's mean (for the reward
        chart only: they never enter a baseline or the loss), the per-function means, and (B,) bool `valid`."""
        lengths = batch.lengths.long().tolist()
        valid_ids = [ids[:L] for ids, L in zip(batch.completion_ids.tolist(), lengths)]  # a prefix
        r, per_fn = self.call_rewards(rows, self.completions(batch.completion_ids), batch.eos.tolist(), valid_ids, K)
        valid = ~torch.isnan(r)
        g = r.view(-1, K)
        group_mean = torch.nanmean(g, 1, keepdim=True).nan_to_num(0.0).expand_as(g).reshape(-1)
        return torch.where(valid, r, group_mean).to(self.device), per_fn, valid.to(self.device)

    def shape(self, r: torch.Tensor, batch: Batch, norm: parts.RewardNorm | None = None):
        """The rollout's reward shaping (parts.shape_rewards) with this run's settings. Shape: (B,)."""
        ro = self.cfg.rollout
        return parts.shape_rewards(r, batch.eos, batch.lengths, missing_eos_penalty=ro.missing_eos_penalty,
                                   max_len=ro.max_new_tokens, overlong_buffer=ro.overlong_buffer,
                                   overlong_penalty_factor=ro.overlong_penalty, clip=ro.reward_clip,
                                   normalize=ro.reward_normalize, norm=norm)

    def single_pass(self) -> bool:
        a, r = self.cfg.algorithm, self.cfg.rollout
        return (a.update == "gradient" and a.epochs * a.minibatches == 1 and
                not 0 < a.micro_batch_size < r.prompts_per_step * r.samples_per_prompt)  # one graph of the batch

    def rollout_is_forward(self, rows: int, prompt_len: int) -> bool:
        """One pass, and no dropout to tell training from sampling: the rollout's own forward (graph kept) is the
        training forward, exactly (tests/test_rollout.py), and the step skips running it again.

        But that graph keeps every decoding step's keys and values: about rows * (T*Tp + T^2/2) cached token
        states per layer, against rows * (Tp + T) for one forward pass. So it is used only while that stays under
        ROLLOUT_GRAPH_BYTES: always for the built-in model, not for long completions of a real one."""
        return (self.single_pass() and self.cfg.model.lora_dropout == 0 and not self.cfg.algorithm.resample_rounds and
                rollout_graph_fits(self.model.config, self.policy.dtype, rows, prompt_len,
                                   self.cfg.rollout.max_new_tokens))

    def logprobs(self, batch: Batch, *, grad: bool, reference: bool = False, with_entropy: bool = False,
                 with_hidden: bool = False) -> dict[str, torch.Tensor]:
        """The log-probs of `batch` (what `token_logprobs` returns), reusing a kept graph where it is valid.

        The one place the step's exact speed shortcuts live: with `grad`, the sampling loop's own forward is
        returned when it kept its graph (one pass, so its policy is the one being trained); the reference
        (`reference=True`, no gradient) is then replayed call for call like that loop, so both round alike and a
        fresh adapter's KL is exactly 0. Otherwise one forward pass, each distinct prompt once."""
        if reference:
            with torch.no_grad(), self.policy.reference():
                return (replay_logprobs if batch.logprobs is not None else token_logprobs)(
                    self.lm, batch, self.live.temperature)
        if grad and batch.logprobs is not None:
            return batch.logprobs
        with torch.set_grad_enabled(grad):
            return token_logprobs(self.lm, batch, self.live.temperature, with_entropy=with_entropy,
                                  with_hidden=with_hidden, full=self.cfg.algorithm.update == "trpo")

    def evaluate(self, batch: Batch) -> Old:
        """Old and reference log-probs, entropy and values. With one pass of one minibatch the old policy IS the
        current one, so the training forward (kept with its graph in `old.fresh`) supplies them: one forward
        saved per step, as TRL does when num_iterations = 1; two when the rollout kept its graph."""
        a, single = self.cfg.algorithm, self.single_pass()
        need_all, need_hidden = a.update == "trpo", self.critic is not None
        if single:
            self.mode(train=True)
        out = self.logprobs(batch, grad=single, with_entropy=True, with_hidden=need_hidden)
        ref = self.logprobs(batch, grad=False, reference=True)
        with torch.no_grad():
            values = self.critic(out["hidden"].detach()) * batch.mask if need_hidden else None
        old = Old(out["logp"].detach(), ref["logp"], out["entropy"].detach(),
                  out["logp_all"].detach() if need_all else None, values)
        old.fresh = out if single else None
        return old

    def greedy_rewards(self, rows: list[dict], norm: parts.RewardNorm | None) -> torch.Tensor:
        """ReMax: the reward of the greedy completion of each prompt, shaped with the sampled batch's statistics
        (a sample that ties the greedy answer gets advantage 0). Shape: (P,)."""
        ids, attn = self.encode(rows)
        self.mode(train=False)
        with torch.no_grad():
            greedy = generate(self.lm, ids, attn, max_new_tokens=self.cfg.rollout.max_new_tokens, greedy=True,
                              eos_id=self.eos_ids, pad_id=self.tok.pad_token_id)
        r, _, _ = self.score(rows, greedy, 1)
        return self.shape(r, greedy, norm)[0]

    def advantages(self, rows, seq_r, token_r, old: Old, batch: Batch, valid, norm, P: int, K: int):
        """Token advantages (B, T), and returns (B, T) for the critic (None without one)."""
        a, mask = self.cfg.algorithm, batch.mask
        returns = None
        if a.estimator == "gae":
            adv, returns = advantages.gae(token_r, old.values, mask, a.gamma, a.lam)
        elif a.estimator == "positives":  # RAFT: only the accepted samples are pushed up, by 1 each
            adv = advantages.sequence_to_tokens(parts.positives(seq_r, a.positive_threshold) * valid, mask)
        else:
            r, v = seq_r.view(P, K), valid.view(P, K)                                      # (P, K)
            inputs = parts.BaselineInputs(
                ema=self.ema_reward,
                greedy=lambda: self.greedy_rewards(rows, norm),  # run only by the baseline that reads it
                values=old.values[:, 0].view(P, K) if old.values is not None else None)
            b = parts.BASELINES[a.baseline](r, v, inputs)                                 # (P, K)
            std = parts.SCALES[a.scale](r, v)                                             # (P, K)
            if parts.BASELINES[a.baseline].needs_critic:
                # Bandit view: the completion is one action, so one-step TD is r + gamma*V(terminal) - V(s_0)
                # = r - V(prompt). The critic learns the return r at every token (gamma = 1, reward at the end).
                returns = seq_r[:, None] * mask                                            # (B, T)
            if a.estimator == "outcome":
                adv = advantages.sequence_to_tokens(
                    parts.sequence_advantages(r, b, std, a.scale != "none").reshape(-1), mask)
            else:  # returns-to-go per token, minus the sequence's baseline
                G = advantages.returns_to_go(token_r, mask, a.gamma)                       # (B, T)
                adv = parts.sequence_advantages(G, b.reshape(-1, 1), std.reshape(-1, 1), a.scale != "none") * mask
        if a.whiten:
            adv = advantages.whiten(adv, mask * valid[:, None])
        return adv * mask * valid[:, None], returns

    def is_weights(self, old: Old, batch: Batch) -> torch.Tensor | None:
        """Importance weights that correct for sampling from another distribution than the learner's (top_p < 1
        truncates it): parts.IS_CORRECTIONS over log pi_old - log pi_sampler. None when off."""
        a = self.cfg.algorithm
        if a.is_correction == "none" or batch.sampler_logp is None:
            return None
        log_w = (old.logp - batch.sampler_logp) * batch.mask                              # (B, T)
        return parts.IS_CORRECTIONS[a.is_correction](log_w, batch.mask, a.is_cap)

    def policy_objective(self, out, old: Old, adv, mask, weights, idx=None, whole=None):
        """The loss the policy minimises on rows `idx`: policy loss + beta * KL (if in the loss) - entropy bonus,
        each aggregated the same way. Returns (loss, info). `whole`: the loss mask of the minibatch these rows are
        a micro-batch of; each term then carries the share of the minibatch's normaliser (losses.normaliser), so
        the micro-batches' losses sum to the minibatch's."""
        a, k, max_len = self.cfg.algorithm, self.cfg.kl, self.cfg.rollout.max_new_tokens
        sel = (lambda x: x) if idx is None else (lambda x: None if x is None else x[idx])
        share = _share(mask, whole, max_len)
        seq_level = losses.POLICY_LOSSES[a.policy_loss].level == "sequence"
        logp, old_logp = out["logp"], sel(old.logp)
        loss, info = losses.policy_loss(logp, old_logp, sel(adv), mask, kind=a.policy_loss,
                                        clip_low=a.clip_low, clip_high=a.clip_high, dual_clip=a.dual_clip or None,
                                        agg=a.aggregation, max_len=max_len, weights=sel(weights))
        if share:
            loss = loss * share("seq_mean_token_sum" if seq_level else a.aggregation)
        info["loss/policy"] = float(loss.detach())
        if k.placement == "loss" and self.kl_ctl.value > 0:
            kl_loss = losses.aggregate(kl.estimate(logp, sel(old.ref_logp), k.estimator, old_logp), mask,
                                       a.aggregation, max_len)
            kl_loss = kl_loss * share(a.aggregation) if share else kl_loss
            loss = loss + self.kl_ctl.value * kl_loss
            info["loss/kl"] = float(kl_loss.detach())
        if a.entropy_coef:
            entropy = losses.aggregate(out["entropy"], mask, a.aggregation, max_len)
            entropy = entropy * share(a.aggregation) if share else entropy
            loss = loss - a.entropy_coef * entropy
            info["loss/entropy"] = float(entropy.detach())
        return loss, info

    def critic_step(self, hidden: torch.Tensor, old: Old, returns, mask, idx=None, whole=None) -> dict[str, float]:
        """The critic's loss on detached states (it never pulls the LoRA weights); returns its info. The caller
        back-propagates it with the policy loss (Adam, own parameter group) or alone (TRPO). `whole`: as in
        policy_objective."""
        a = self.cfg.algorithm
        sel = (lambda x: x) if idx is None else (lambda x: x[idx])
        v = self.critic(hidden.detach())
        v_loss, v_info = losses.value_loss(v, sel(old.values), sel(returns), mask, clip=a.value_clip or None)
        if whole is not None:
            v_loss = v_loss * _share(mask, whole, None)("token_mean")
        return {"value_loss": v_loss, "loss/value": float(v_loss.detach()), "value/clip_frac": v_info["clip_frac"]}

    def gradient_update(self, batch: Batch, old: Old, adv, returns, loss_mask, weights=None) -> dict[str, Any]:
        """Adam over epochs x minibatches: the PPO loop (one pass of one minibatch for plain policy gradients).

        A minibatch with no token in the loss (every group flat and filtered, every completion unscorable or
        masked) is skipped: a zero gradient would still move the weights by AdamW's momentum."""
        a, B = self.cfg.algorithm, batch.mask.size(0)
        infos: list[dict[str, float]] = []
        last_logp = old.logp.clone()
        skipped = 0
        self.mode(train=True)
        for _ in range(a.epochs):
            # one minibatch: the whole batch, in order (its prompts stay shared); else a fresh shuffle per epoch
            order = torch.randperm(B, generator=self.cpu_gen) if a.minibatches > 1 else torch.arange(B)
            for idx in order.to(self.device).chunk(a.minibatches):
                mb, mask = (batch, loss_mask) if a.minibatches == 1 else (batch.select(idx), loss_mask[idx])
                if not mask.any():
                    skipped += 1
                    continue
                self.opt.zero_grad(set_to_none=True)
                micro = []  # gradient accumulation: the micro-batches' losses sum to the minibatch's
                for part in _micro_batches(idx, a.micro_batch_size):
                    # batch.select(part, k): a micro-batch of whole groups keeps its prompts shared (rollout checks)
                    whole, pmb, pmask = (None, mb, mask) if part is idx else (mask, batch.select(part, mb.k),
                                                                              loss_mask[part])
                    if not pmask.any():
                        continue  # no token in the loss: its share of every term is exactly 0
                    out = old.fresh or self.logprobs(pmb, grad=True, with_entropy=a.entropy_coef > 0,
                                                     with_hidden=self.critic is not None)
                    loss, info = self.policy_objective(out, old, adv, pmask, weights, part, whole)
                    if self.critic is not None:
                        v = self.critic_step(out["hidden"], old, returns, pmask, part, whole)
                        loss = loss + v.pop("value_loss")  # separate parameters and optimiser group: no weight needed
                        info.update(v)
                    info["loss/total"] = float(loss.detach())
                    self.ensure_finite(loss, "loss")
                    loss.backward()
                    last_logp[part] = out["logp"].detach()
                    micro.append(info)
                info = _summed_losses(micro)
                info["grad/norm"] = self.clip_grads()
                self.opt.step()
                infos.append(info)
        total = a.epochs * a.minibatches
        return {**_mean_dicts(infos), "logp": last_logp, "update/skipped_frac": skipped / total}

    def trpo_update(self, batch: Batch, old: Old, adv, returns, loss_mask, weights=None) -> dict[str, Any]:
        """Natural-gradient step (Schulman et al. 2015): g = grad of the importance-ratio surrogate, s = F^-1 g by
        conjugate gradient with Fisher-vector products of the exact per-token KL, scaled to the trust region,
        then a backtracking line search on the same surrogate and the real KL. The critic is then fitted for
        `critic_iters` Adam steps on the batch (Schulman et al. 2016 fit V by several iterations per batch)."""
        a, mask = self.cfg.algorithm, loss_mask
        params = self.params
        self.mode(train=True)
        if not mask.any():
            return {"logp": old.logp, "update/skipped_frac": 1.0}

        def forward(with_hidden=False):  # with a gradient, except inside the line search's no_grad
            return self.logprobs(batch, grad=torch.is_grad_enabled(), with_entropy=a.entropy_coef > 0,
                                 with_hidden=with_hidden)

        def mean_kl(out):  # KL(pi_old || pi_theta) per valid token, exact over the vocabulary
            kl_tok = (old.logp_all.exp() * (old.logp_all - out["logp_all"])).sum(-1)
            return (kl_tok * batch.mask).sum() / batch.mask.sum().clamp(min=1)

        out = forward(with_hidden=self.critic is not None)
        loss, info = self.policy_objective(out, old, adv, mask, weights)
        self.ensure_finite(loss, "loss")
        g = trpo.flat_grad(loss, params, retain_graph=True)
        grad_kl = trpo.flat_grad(mean_kl(out), params, create_graph=True)

        def fvp(v):
            return trpo.flat_grad(grad_kl @ v, params, retain_graph=True)

        step, expected = trpo.natural_gradient_step(g, fvp, a.trpo_max_kl, cg_iters=a.trpo_cg_iters,
                                                    damping=a.trpo_damping)
        x0 = trpo.flat_params(params).detach().clone()

        @torch.no_grad()
        def at(x, what):
            trpo.set_flat_params(params, x)
            o = forward()
            return float(self.policy_objective(o, old, adv, mask, weights)[0]) if what == "loss" else float(mean_kl(o))

        x_new, ls = trpo.line_search(lambda x: at(x, "loss"), x0, step, expected, lambda x: at(x, "kl"), a.trpo_max_kl)
        trpo.set_flat_params(params, x_new)
        info.update({"grad/norm": float(g.norm()), "trpo/step_frac": float(ls["step_frac"]),
                     "trpo/accepted": float(ls["accepted"]), "trpo/kl": float(ls["kl"])})
        if self.critic is not None:
            hidden = out["hidden"].detach()
            for _ in range(a.critic_iters):
                v = self.critic_step(hidden, old, returns, mask)
                self.opt.zero_grad(set_to_none=True)
                v.pop("value_loss").backward()  # the critic reads detached states: only its parameters move
                self.opt.step()
            info.update(v)
        info["loss/total"] = info["loss/policy"] + info.get("loss/value", 0.0)
        with torch.no_grad():
            info["logp"] = forward()["logp"]
        return {**info, "update/skipped_frac": 0.0}

    def reset_reference(self) -> None:
        """ProRL's reference reset (Liu et al. 2025, ProRL, arXiv:2505.24864): the current policy becomes the
        reference. The adapter's update is merged into the frozen weights, B is zeroed (so the policy is
        unchanged and its KL to the new reference is exactly 0) and the adapter's Adam state is cleared."""
        with torch.no_grad():
            for layer in self.model.modules():
                if hasattr(layer, "lora_B") and hasattr(layer, "get_delta_weight") and "default" in layer.lora_B:
                    layer.get_base_layer().weight += layer.get_delta_weight("default").to(
                        layer.get_base_layer().weight.dtype)
                    layer.lora_B["default"].weight.zero_()
        for p in self.params:
            self.opt.state.pop(p, None)
        if self.lm is not self.model:  # the fast path concatenated the old frozen weights once: build it again
            self.lm = fast_decoder(self.model)[0] or self.model
        self.kl_ctl.value = self.live.kl_coef

    def variance_due(self) -> bool:
        r = self.cfg.run
        return r.grad_variance and self.step_count % r.grad_variance_every == 0

    def grad_variance(self, batch: Batch, old: Old, adv, loss_mask, weights, P: int, K: int) -> float | None:
        """Trace of the covariance of the policy-gradient estimate (parts.gradient_variance), from G groups of
        prompts, each back-propagating the step's own policy loss."""
        G = min(4, P)
        if G < 2:
            return None
        a = self.cfg.algorithm
        self.mode(train=True)
        grads = []
        for chunk in torch.arange(P).chunk(G):
            idx = (chunk[:, None] * K + torch.arange(K)).reshape(-1).to(self.device)
            out = self.logprobs(batch.select(idx, k=K), grad=True)
            loss, _ = losses.policy_loss(out["logp"], old.logp[idx], adv[idx], loss_mask[idx], kind=a.policy_loss,
                                         clip_low=a.clip_low, clip_high=a.clip_high, dual_clip=a.dual_clip or None,
                                         agg=a.aggregation, max_len=self.cfg.rollout.max_new_tokens,
                                         weights=None if weights is None else weights[idx])
            grads.append(trpo.flat_grad(loss, self.params).detach())
        return parts.gradient_variance(torch.stack(grads))                                # (G, n_params)

    def clip_grads(self) -> float:
        clip = self.cfg.optim.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else float("inf"))
        self.ensure_finite(norm, "gradient norm")
        return float(norm)

    def ensure_finite(self, x: torch.Tensor, what: str) -> None:
        if not torch.isfinite(x).all():
            raise TrainingError(f"step {self.step_count + 1}: the {what} became {float(x.detach().sum())} (not finite); "
                                "the weights were not updated. Lower the learning rate or the KL coefficient, "
                                "or clip rewards.")

    def _ema(self, x: float | None) -> float | None:
        """The moving-average baseline's update with this batch's mean shaped sequence reward."""
        d = self.cfg.algorithm.ema_decay
        if x is None or self.ema_reward is None:
            return x
        return d * self.ema_reward + (1 - d) * x

    # ------------------------------------------------------------------------------------------------- records

    def metrics(self, scores, per_fn, batch, old, kl_seq, adv, loss_mask, flat, grad_var, upd, returns, weights,
                step_s) -> dict[str, float]:
        self.ensure_finite(scores, "reward")
        mask = batch.mask
        n_tok = mask.sum().clamp(min=1)
        valid = loss_mask.bool()
        m: dict[str, float] = {
            "step": self.step_count, "time": time.perf_counter() - self.t_start,
            "reward/mean": float(scores.mean()), "reward/std": float(scores.std()) if scores.numel() > 1 else 0.0,
            **{f"reward/{k}/mean": v for k, v in per_fn.items()},
            "kl/mean": kl_seq,
            "entropy/mean": float((old.entropy * mask).sum() / n_tok),
            "adv/mean": float(adv[valid].mean()) if valid.any() else 0.0,
            "adv/std": float(adv[valid].std()) if valid.sum() > 1 else 0.0,
            "len/mean": float(mask.sum(1).mean()), "eos/rate": float(batch.eos.float().mean()),
            "time/step_s": step_s, "tokens_per_s": float(mask.sum()) / max(step_s, 1e-9),
            "lr": self.live.lr, "temperature": self.live.temperature,
        }
        if self.cfg.kl.placement != "none":
            m["kl/coef"] = float(self.kl_ctl.value)
        for key in ("clip_frac", "clip_frac_low", "clip_frac_high"):
            if key in upd and losses.POLICY_LOSSES[self.cfg.algorithm.policy_loss].clips:
                m[key.replace("clip_frac", "clip/frac")] = upd[key]
        for key, name in (("ratio_mean", "ratio/mean"), ("ratio_max", "ratio/max"), ("approx_kl", "approx_kl")):
            if key in upd:
                m[name] = upd[key]
        for key in ("loss/policy", "loss/value", "loss/kl", "loss/entropy", "loss/total", "grad/norm",
                    "value/clip_frac", "trpo/step_frac", "trpo/accepted", "trpo/kl", "update/skipped_frac"):
            if key in upd:
                m[key] = upd[key]
        if flat is not None:
            m["groups/zero_std_frac"] = float(flat.float().mean())
        if self.cfg.algorithm.resample_rounds:
            m["groups/resample_rounds"] = float(self.resampled)
        if weights is not None:
            w = weights[mask > 0]
            m["is/weight_mean"] = float(w.mean()) if w.numel() else 1.0
            m["is/zero_frac"] = float((w == 0).float().mean()) if w.numel() else 0.0
        if self.cfg.algorithm.top_entropy_frac:
            m["tokens/trained_frac"] = float(loss_mask.sum() / n_tok)
        if self.task.pass_reward is not None and scores.numel() == mask.size(0):  # right vs wrong lengths
            m.update(parts.length_by_outcome(mask.sum(1), scores >= self.task.pass_reward))
        if grad_var is not None:
            m["grad/variance"] = grad_var
        if returns is not None:
            m["value/explained_var"] = losses.explained_variance(old.values, returns, mask)
        return m

    def samples(self, rows, batch, old, kl_t, scores, adv, new_logp, K) -> list[dict[str, Any]]:
        """The first run.log_samples completions, rounded up to whole groups of K (the samples view shows a group
        under its prompt), with their per-token figures (formatted by `runstore.sample_records`)."""
        n = min(-(-self.cfg.run.log_samples // K) * K, batch.mask.size(0))
        lengths = batch.lengths[:n].long().tolist()
        ratio = (new_logp[:n] - old.logp[:n]).exp() if new_logp is not None else torch.ones_like(old.logp[:n])
        per_token = {name: [row[:L] for row, L in zip(t[:n].tolist(), lengths)]  # one copy, not per value
                     for name, t in (("adv", adv), ("logp", old.logp), ("ref_logp", old.ref_logp), ("ratio", ratio),
                                     ("kl", kl_t))}
        ids = batch.completion_ids[:n].tolist()
        return sample_records(self.step_count, [rewards.as_text(rows[i // K]["prompt"]) for i in range(n)],
                              self.completions(batch.completion_ids[:n]),
                              [self.tok.convert_ids_to_tokens(ids[i][:L]) for i, L in enumerate(lengths)],
                              scores[:n].tolist(), batch.eos[:n].tolist(), per_token, group_size=K)


def _micro_batches(idx: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The rows `idx` of a minibatch in micro-batches of `size` rows (0, or at least all: `idx` itself)."""
    return [idx] if size <= 0 or size >= idx.numel() else list(idx.split(size))


def _share(mask: torch.Tensor, whole: torch.Tensor | None, max_len: int | None):
    """mode -> the micro-batch's share of the minibatch's loss normaliser; None when it is the whole minibatch."""
    if whole is None:
        return None
    return lambda mode: losses.normaliser(mask, mode, max_len) / losses.normaliser(whole, mode, max_len)


def _summed_losses(ds: list[dict[str, float]]) -> dict[str, float]:
    """One minibatch's info from its micro-batches': losses add up (each is its share), statistics average."""
    out = _mean_dicts(ds)
    for key in out:
        if key.startswith("loss/"):
            out[key] = sum(d[key] for d in ds if key in d)
    return out


def _mean_dicts(ds: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for d in ds for k in d}
    out = {k: sum(d[k] for d in ds if k in d) / sum(1 for d in ds if k in d) for k in keys}
    if any("ratio_max" in d for d in ds):
        out["ratio_max"] = max(d["ratio_max"] for d in ds if "ratio_max" in d)
    return out

