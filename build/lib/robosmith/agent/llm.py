"""LLM access through the `openai` client, against any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama,
llama.cpp server). Every call has a timeout and retries with backoff, and is logged with its tokens and
cost to `llm_calls.jsonl`; a budget cap stops the loop cleanly instead of overspending.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import openai

from robosmith.errors import ConfigError, RobosmithError

# USD per million tokens (input, output) for models whose price we know; others cost "unknown".
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
}


class BudgetExceeded(RuntimeError):
    """The run's LLM budget is spent; the loop stops cleanly at the next decision point."""


class LLMError(RobosmithError, RuntimeError):
    """The endpoint failed on every retry."""


@dataclass
class LLMConfig:
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    temperature: float = 1.0
    samples: int = 4  # reward candidates per iteration
    timeout_s: float = 120.0
    max_retries: int = 3
    budget_usd: float | None = None

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)

    @staticmethod
    def from_env(**overrides: object) -> LLMConfig:
        """Settings from ROBOSMITH_LLM_* (or the usual OPENAI_*) variables; explicit overrides win."""
        env = os.environ
        cfg = LLMConfig(
            base_url=env.get("ROBOSMITH_LLM_BASE_URL") or env.get("OPENAI_BASE_URL"),
            model=env.get("ROBOSMITH_LLM_MODEL", "gpt-4o-mini"),
            api_key=env.get("ROBOSMITH_LLM_API_KEY") or env.get("OPENAI_API_KEY"),
            temperature=float(env.get("ROBOSMITH_LLM_TEMPERATURE", 1.0)),
            samples=int(env.get("ROBOSMITH_LLM_SAMPLES", 4)),
            timeout_s=float(env.get("ROBOSMITH_LLM_TIMEOUT", 120.0)),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        if cfg.samples < 1 or not 0 <= cfg.temperature <= 2 or cfg.timeout_s <= 0:
            raise ConfigError("LLM samples must be >= 1, temperature in [0, 2], timeout > 0")
        return cfg

    def public(self) -> dict:
        """What may be saved in a run folder: everything but the key."""
        out = asdict(self)
        out["api_key"] = "***" if self.api_key else None
        return out


class LLMClient:
    def __init__(self, cfg: LLMConfig, log_path: Path) -> None:
        self.cfg, self.log_path = cfg, log_path
        # Retries are ours (with logging); the client's own would hide failed attempts.
        self.client = openai.OpenAI(
            base_url=cfg.base_url, api_key=cfg.api_key or "not-needed", timeout=cfg.timeout_s, max_retries=0
        )

    def spent_usd(self) -> float:
        if not self.log_path.is_file():
            return 0.0
        total = 0.0
        for line in self.log_path.read_text().splitlines():
            try:
                total += json.loads(line).get("cost_usd") or 0.0
            except json.JSONDecodeError:
                continue
        return total

    def _log(self, record: dict) -> None:
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def complete(self, messages: list[dict], n: int = 1, purpose: str = "", **kwargs: object) -> list[str]:
        """n completions of one chat. Some servers ignore `n`; we then ask again until we have n."""
        if self.cfg.budget_usd is not None and self.spent_usd() >= self.cfg.budget_usd:
            raise BudgetExceeded(f"LLM budget of ${self.cfg.budget_usd:.2f} is spent")
        texts: list[str] = []
        while len(texts) < n:
            texts.extend(self._call(messages, n - len(texts), purpose, **kwargs))
        return texts[:n]

    def _call(self, messages: list[dict], n: int, purpose: str, **kwargs: object) -> list[str]:
        delay = 1.0
        for attempt in range(self.cfg.max_retries + 1):
            started = time.monotonic()
            try:
                response = self.client.chat.completions.create(
                    model=self.cfg.model, messages=messages, temperature=self.cfg.temperature, n=n, **kwargs
                )
            except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                    openai.RateLimitError) as e:
                self._log({"time": time.time(), "purpose": purpose, "attempt": attempt, "error": type(e).__name__,
                           "seconds": round(time.monotonic() - started, 3)})
                if attempt == self.cfg.max_retries:
                    raise LLMError(f"LLM endpoint failed {attempt + 1} times: {type(e).__name__}: {e}") from e
                time.sleep(delay)
                delay *= 2
                continue
            except openai.APIStatusError as e:  # 4xx other than 429: retrying will not help
                raise LLMError(f"LLM endpoint refused the request: {e.status_code} {e.message}") from e
            usage = response.usage
            tokens_in = usage.prompt_tokens if usage else 0
            tokens_out = usage.completion_tokens if usage else 0
            price = PRICES_PER_MTOK.get(self.cfg.model)
            cost = (tokens_in * price[0] + tokens_out * price[1]) / 1e6 if price else None
            self._log({
                "time": time.time(), "purpose": purpose, "attempt": attempt, "model": self.cfg.model,
                "choices": len(response.choices), "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                "cost_usd": cost, "seconds": round(time.monotonic() - started, 3),
            })
            return [c.message.content or "" for c in response.choices] or [""]
        raise AssertionError("unreachable")
