"""Loading models through one code path: the built-in tiny model and any Hugging Face causal LM.

``load_policy`` wraps a causal LM with a fresh LoRA adapter (peft). The reference policy is the same model
with the adapter disabled (``policy.reference()``), so there is never a second copy of the weights, and
the KL to the reference is exactly the KL to the model the run started from.

Base models are cached per process, keyed by (path, device, dtype). Each ``load_policy`` call builds a
new module tree around the cached, frozen base tensors (a ``deepcopy`` whose memo maps every parameter
and buffer to itself): the LoRA adapter is new every call, the base weights are
shared and never copied. Hence: do not merge adapters into ``policy.model`` or move / cast it; ask
``load_policy`` for the device you want.

Dropout inside the base model is switched off (RL needs the same log-probs at rollout and update time);
the only dropout left is ``lora_dropout``. A tokenizer that does not fit the model (more tokens than embedding rows, or no tokenizer files) is refused
with a message saying how to fix it. Left out on purpose: quantization, multi-GPU sharding,
``trust_remote_code`` and adapters loaded from disk.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

TINY = "tiny"
TINY_RM = "tiny-rm"
_DATA = Path(__file__).resolve().parent / "data" / "tiny"
TINY_CHAIN = "tiny-chain"  # the chain task's own model (labcore.chain_pretrain), beside the tiny world
TINY_CHAIN_LOOPS = "tiny-chain-loops"  # the same, pretrained with a looping style (the length-bias trajectory lesson)
BUILTIN: dict[str, Path] = {TINY: _DATA / "policy", TINY_RM: _DATA / "reward",
                            TINY_CHAIN: _DATA.parent / "chain" / "policy",
                            TINY_CHAIN_LOOPS: _DATA.parent / "chain_loops" / "policy"}

_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
# model_type -> LoRA target module names; anything else gets every nn.Linear leaf name except the head.
LORA_TARGETS: dict[str, list[str]] = {
    "llama": _QKVO, "qwen2": _QKVO, "qwen3": _QKVO, "mistral": _QKVO, "smollm3": _QKVO,
    "gemma": _QKVO, "gemma2": _QKVO,
    "gpt2": ["c_attn", "c_proj"],
    "gpt_neox": ["query_key_value"],
}
_HEAD_NAMES = {"lm_head", "score", "classifier", "embed_out"}
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_CACHE_SIZE = 2
_BASE_CACHE: OrderedDict[tuple, nn.Module] = OrderedDict()
_RM_CACHE: OrderedDict[tuple, tuple] = OrderedDict()
_CACHE_LOCK = threading.Lock()  # a UI warm-up thread and a run may load the same model at once


class ModelLoadError(ValueError):
    """A model could not be found or loaded; the message names it and says how to fix it."""


def _fail(name: str, detail: str) -> ModelLoadError:
    close = difflib.get_close_matches(name, list(BUILTIN), n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close and close[0] != name else ""
    return ModelLoadError(
        f"Could not load model '{name}': {detail}.{hint} Check the spelling of the Hugging Face id, or that "
        "the local directory exists and holds config.json and the weights. Without network access a hub "
        "model must already be in the Hugging Face cache (HF_HOME; set HF_HUB_OFFLINE=1 to skip network "
        f"retries). Use '{TINY}' (reward model '{TINY_RM}') for the built-in offline model.")


def resolve_model_path(name_or_path: str) -> str:
    """``tiny``/``tiny-rm`` -> the shipped directories; a local directory -> its absolute path; else a hub id.

    Raises ModelLoadError for a path that does not exist and for names that cannot be hub ids.
    """
    name = str(name_or_path).strip()
    if name in BUILTIN:
        path = BUILTIN[name]
        if not (path / "config.json").is_file():
            rebuild = "rlhf-lab pretrain --world chain" if name == TINY_CHAIN else "rlhf-lab pretrain"
            raise ModelLoadError(f"The built-in model '{name}' is missing at {path}. Rebuild it with "
                                 f"`{rebuild}` (a few minutes on a CPU).")
        return str(path)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    looks_local = expanded.startswith((".", "/", "~")) or expanded.count("/") > 1 or "\\" in expanded
    if looks_local or os.path.exists(expanded):
        raise _fail(name, f"no directory at {os.path.abspath(expanded)}")
    if not _HUB_ID.match(name):
        raise _fail(name, "not a local directory and not a valid Hugging Face id ('org/name')")
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the hub, so an offline typo fails in seconds instead of after ~25 s of retries."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy we cannot tell; let the real request decide
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _from_pretrained(loader, name: str, path: str, **kwargs):
    """``loader.from_pretrained`` with any failure turned into ModelLoadError; hub ids try the cache first."""
    kwargs["trust_remote_code"] = False
    local_kwargs = dict(kwargs, local_files_only=True)
    if loader.__name__.startswith("AutoModel") and _transformers_major() >= 5:
        # transformers 5's adapter lookup ignores local_files_only; 4.x passes it on itself and refuses it twice
        local_kwargs["adapter_kwargs"] = {"local_files_only": True}
    try:
        if os.path.isdir(path):
            return loader.from_pretrained(path, **local_kwargs)
        try:  # the HF cache first: instant, and works offline without network retries
            return loader.from_pretrained(path, **local_kwargs)
        except OSError:
            if _offline():
                raise
            if not _hub_reachable():
                raise OSError("not in the Hugging Face cache, and the hub is unreachable (offline?)") from None
            return loader.from_pretrained(path, **kwargs)
    except Exception as e:  # offline, typo, missing files, unknown architecture: never a raw traceback
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:240].rstrip(".")
        raise _fail(name, f"{type(e).__name__}: {first_line}") from e


def pick_device(device: str = "auto") -> tuple[torch.device, torch.dtype]:
    """``auto``: CUDA (bfloat16 if supported, else float32), else MPS, else CPU; MPS and CPU use float32.

    An explicit ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` is checked for availability.
    """
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use 'auto' or 'cpu'")
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available; use 'auto' or 'cpu'")
    if dev.type not in {"cpu", "mps"}:
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return dev, torch.float32


def default_lora_targets(model: nn.Module) -> list[str]:
    """LoRA target module names for ``model``'s architecture (see LORA_TARGETS)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in LORA_TARGETS:
        return list(LORA_TARGETS[model_type])
    from transformers.pytorch_utils import Conv1D

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, (nn.Linear, Conv1D))}
    return sorted(names - _HEAD_NAMES)


def _no_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.0


def _cache_put(cache: OrderedDict, key: tuple, value) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def clear_model_cache() -> None:
    """Forget the cached base and reward models (frees their memory once no policy uses them)."""
    _BASE_CACHE.clear()
    _RM_CACHE.clear()


def _base_model(name: str, path: str, device: torch.device, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoModelForCausalLM

    key = (path, str(device), str(dtype))
    with _CACHE_LOCK:
        if key not in _BASE_CACHE:
            model = _from_pretrained(AutoModelForCausalLM, name, path, dtype=dtype)
            model.to(device).eval().requires_grad_(False)
            _no_dropout(model)
            _cache_put(_BASE_CACHE, key, model)
        _BASE_CACHE.move_to_end(key)
        return _BASE_CACHE[key]


# Any one of these makes a folder loadable by AutoTokenizer (a fast tokenizer, or a slow one's vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model",
                   "vocab.txt")


def _load_tokenizer(name: str, path: str):
    from transformers import AutoTokenizer

    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise ModelLoadError(f"'{name}' has no tokenizer: {path} holds none of {', '.join(TOKENIZER_FILES)}. "
                             "Save the model's tokenizer into the same folder (tokenizer.save_pretrained(folder)).")
    tokenizer = _from_pretrained(AutoTokenizer, name, path)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise _fail(name, "its tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_vocab(name: str, model: nn.Module, tokenizer) -> None:
    """Raise ModelLoadError when the tokenizer can emit ids the model's embedding has no row for (the forward
    would fail with `IndexError: index out of range in self`). A larger embedding is fine (padded vocabularies)."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelLoadError(f"The tokenizer of '{name}' has {len(tokenizer)} tokens but the model's embedding has "
                             f"only {rows} rows, so token ids from {rows} up would crash the forward pass. Use the "
                             "tokenizer saved with this model, or grow the embedding "
                             "(model.resize_token_embeddings(len(tokenizer))) and save the model again.")


@dataclass
class Policy:
    model: nn.Module  # peft.PeftModel: the causal LM with a LoRA adapter
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    name: str = ""
    lora_targets: list[str] = field(default_factory=list)
    _adapter_layers: list[nn.Module] | None = field(default=None, repr=False)

    @contextmanager
    def reference(self) -> Iterator[nn.Module]:
        """The reference policy: the same model with the LoRA adapter disabled, no second copy.

        The switch peft's `disable_adapter()` flips, on the LoRA layers found once: peft's context walks every
        module twice and resets requires_grad on each adapter per call (~4 ms a step on the tiny model).
        tests/test_model.py checks that the result is exactly the base model."""
        if self._adapter_layers is None:
            self._adapter_layers = [m for m in self.model.modules() if hasattr(m, "lora_A")
                                    and isinstance(getattr(m, "_disable_adapters", None), bool)]
        if not self._adapter_layers:  # a peft without that switch: its own (slower) context
            with self.model.disable_adapter():
                yield self.model
            return
        was = [m._disable_adapters for m in self._adapter_layers]
        for m in self._adapter_layers:
            m._disable_adapters = True
        try:
            yield self.model
        finally:
            for m, w in zip(self._adapter_layers, was):
                m._disable_adapters = w

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA parameters."""
        return [p for p in self.model.parameters() if p.requires_grad]


def load_policy(name_or_path: str = TINY, *, lora_rank: int = 8, lora_alpha: float = 16.0,
                lora_dropout: float = 0.0, lora_targets: list[str] | None = None,
                device: str = "auto", seed: int = 0) -> Policy:
    """A causal LM with a fresh LoRA adapter, deterministic given ``seed``.

    LoRA A matrices get peft's default init from ``seed`` (B starts at zero, so the adapted model equals
    the base model); the global torch RNG is left untouched.
    """
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    if lora_rank < 1:
        raise ValueError(f"lora_rank must be >= 1, got {lora_rank}")
    path = resolve_model_path(name_or_path)
    dev, dtype = pick_device(device)
    base = _base_model(name_or_path, path, dev, dtype)
    tokenizer = _load_tokenizer(name_or_path, path)
    check_vocab(name_or_path, base, tokenizer)
    if base.config.pad_token_id is None:
        base.config.pad_token_id = tokenizer.pad_token_id
    # A new module tree around the same frozen tensors: the adapter is fresh, the weights are not copied.
    shared = {id(t): t for t in list(base.parameters()) + list(base.buffers())}
    model = copy.deepcopy(base, memo=shared)
    targets = list(lora_targets) if lora_targets else default_lora_targets(model)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f"lora_targets {missing} are not modules of '{name_or_path}'; "
                         f"the defaults for it are {default_lora_targets(model)}")
    fan_in_fan_out = any(isinstance(m, Conv1D) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in targets)
    config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=targets,
                        fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    peft_model.eval()
    return Policy(peft_model, tokenizer, dev, dtype, name=str(name_or_path), lora_targets=targets)


def load_reward_model(name_or_path: str = TINY_RM, device: str = "auto") -> tuple[nn.Module, object]:
    """A sequence-classification reward model with one output, frozen, in eval mode, and its tokenizer.

    Cached per process by (path, device); the tokenizer is right-padded and has a pad token.
    """
    from transformers import AutoModelForSequenceClassification

    path = resolve_model_path(name_or_path)
    dev, dtype = pick_device(device)
    key = (path, str(dev))
    with _CACHE_LOCK:
        if key not in _RM_CACHE:
            model = _from_pretrained(AutoModelForSequenceClassification, name_or_path, path, dtype=dtype)
            if model.config.num_labels != 1:
                raise _fail(name_or_path, f"a reward model needs one output (num_labels=1), this one has "
                                          f"{model.config.num_labels}")
            tokenizer = _load_tokenizer(name_or_path, path)
            check_vocab(name_or_path, model, tokenizer)
            tokenizer.padding_side = "right"
            if model.config.pad_token_id is None:
                model.config.pad_token_id = tokenizer.pad_token_id
            model.to(dev).eval().requires_grad_(False)
            _cache_put(_RM_CACHE, key, (model, tokenizer))
        _RM_CACHE.move_to_end(key)
        return _RM_CACHE[key]
