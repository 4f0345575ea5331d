"""Name -> factory registries: models, losses, datasets, evaluators, train steps, data ops.

Projects register their pieces when they are imported:

    from framework import registry

    @registry.MODELS.register("myproject.classifier")
    class Classifier(nn.Module): ...

Names are namespaced by the project that registers them ("myproject.classifier"); framework's
own pieces have plain names ("vit_classification"). A config names each piece by its registry
name; `Registry.build` turns the name and the config's keyword arguments into an object, with
errors that name the config key at fault.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from framework.config import ConfigError  # Defined in config; many modules import it here.


class Registry:
    """A mapping from snake_case names to factories (classes or functions)."""

    def __init__(self, kind: str):
        """Takes `kind`, a plural noun used in error messages ("models", "losses")."""
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}
        self._renamed: dict[str, str] = {}  # Former name -> current name.

    def register(self, name: str, formerly: Sequence[str] = ()
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Returns a decorator that registers a factory under `name` and returns it unchanged.

        `formerly` lists names it was registered under before: `renamed` maps them to `name`
        so that configs recorded with them still read (see framework.config.upgrade_names).
        """

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            existing = self._factories.get(name)
            if existing is not None and _qualname(existing) != _qualname(factory):
                raise ValueError(
                    f"{self.kind}: name {name!r} is already registered by "
                    f"{_qualname(existing)}; pick another name for {_qualname(factory)}."
                )
            for old in formerly:
                if self._renamed.get(old, name) != name:
                    raise ValueError(f"{self.kind}: the former name {old!r} already stands "
                                     f"for {self._renamed[old]!r}; it cannot also mean {name!r}.")
                self._renamed[old] = name
            self._factories[name] = factory
            return factory

        return decorator

    def renamed(self, name: str) -> str | None:
        """Returns the current name of the former name `name`, or None when it is not one."""
        return None if name in self._factories else self._renamed.get(name)

    def names(self) -> list[str]:
        """Returns the registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def get(self, name: str, config_key: str = "name") -> Callable[..., Any]:
        """Returns the factory registered under `name`.

        Raises ConfigError naming `config_key`, the close matches and every known name when
        `name` is unknown.
        """
        if name in self._factories:
            return self._factories[name]
        singular = self.kind[:-2] if self.kind.endswith("ses") else self.kind[:-1]
        if self.renamed(name):
            raise ConfigError(f"{config_key}={name!r}: this {singular} is now named "
                              f"{self.renamed(name)!r}; use the new name.")
        close = difflib.get_close_matches(str(name), self.names(), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(
            f"{config_key}={name!r}: unknown {singular} name.{hint} "
            f"Known {self.kind}: {', '.join(self.names()) or '(none)'}. "
            "If a project registers it, set config.project so that the entry point "
            "imports the project."
        )

    def build(self, name: str, kwargs: Mapping[str, Any], config_key: str, **extra: Any) -> Any:
        """Calls the factory for `name` with `kwargs` (from the config) and `extra` (from code).

        Unknown keyword arguments are reported as `config_key.<arg>` with the accepted ones.
        """
        factory = self.get(name, f"{config_key}.name")
        singular = self.kind[:-2] if self.kind.endswith("ses") else self.kind[:-1]
        check_kwargs(factory, kwargs, config_key, f"{singular} {name!r}")
        return factory(**dict(kwargs), **extra)


def accepted_kwargs(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    """Returns (names of the keyword arguments `factory` takes, whether it takes **kwargs)."""
    if inspect.isclass(factory) and hasattr(factory, "__dataclass_fields__"):
        fields = {
            n for n, f in factory.__dataclass_fields__.items()
            if f.init and n not in ("parent", "name")
        }
        return fields, False
    params = inspect.signature(factory).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    return names, var_kw


def check_kwargs(
    factory: Callable[..., Any], kwargs: Mapping[str, Any], config_key: str, what: str
) -> None:
    """Raises ConfigError when `kwargs` holds a key that `factory` does not accept."""
    names, var_kw = accepted_kwargs(factory)
    if var_kw:
        return
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(
            f"{config_key}.{unknown[0]}: unknown key for {what}. "
            f"Accepted keys: {', '.join(sorted(names))}."
        )


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS = Registry("models")
LOSSES = Registry("losses")
DATASETS = Registry("datasets")
EVALUATORS = Registry("evaluators")
INIT_ADAPTERS = Registry("init_adapters")
# Train step factories named by `config.train_step.name`: factory(parts: framework.step.
# StepParts, **config keys) -> train_step(state, batch) -> (state, metrics).
TRAIN_STEPS = Registry("train_steps")
# Per-example preprocessing ops named in `config.data.<split>.preprocess` strings
# ("op1(k=v)|op2"), and batch ops in `config.data.<split>.batch_preprocess` (mixup, cutmix).
PREPROCESS_OPS = Registry("preprocess_ops")
