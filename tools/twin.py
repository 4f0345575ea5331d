"""The PyTorch twin of a config's model, in its own process, for `tools.benchmark --compare`.

A twin module mirrors one registry model in a PyTorch library and has
`prepare(config, batch) -> (runners, info)`: runners["train"]() trains one step on the batch
(the config's AdamW, gradient clipping) and returns the loss, runners["forward"]() runs one
forward pass without gradients; info holds params and the library versions
(`torch_runners` builds both from the net and its loss):
  vit_classification    timm VisionTransformer       tools/timm_compare.py
  image_text.two_tower  open_clip ViT-B-16-SigLIP    tools/open_clip_compare.py
  vivit.classifier      transformers ViViT           tools/vivit_compare.py

The twin runs in a child process (`python -m tools.twin`, driven over a pipe one step at a
time), so that each framework's peak memory is its own process's peak RSS and the parent
never imports torch. The parent and the child take turns: each step of one runs alone.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from framework import process_memory

TWINS = {
    "vit_classification": ("tools.timm_compare", "timm"),
    "image_text.two_tower": ("tools.open_clip_compare", "open_clip"),
    "vivit.classifier": ("tools.vivit_compare", "transformers"),
}


def twin_of(model_name: str) -> tuple[str, str]:
    """Returns (twin module, library name) for a registry model name; raises ValueError
    naming the models that have a twin."""
    if model_name not in TWINS:
        raise ValueError(f"--compare: config.model.name={model_name!r} has no PyTorch twin; "
                         f"one of {', '.join(TWINS)} has.")
    return TWINS[model_name]


class TwinProcess:
    """A child process running the twin of `config.model` on `batch` (numpy arrays).

    `step("train")` / `step("forward")` runs one train step / forward pass there and returns
    its loss (0.0 for a forward); `finish()` returns the twin's info (params, versions,
    peak_memory_bytes: the child's peak RSS) and ends the child. `python` is the interpreter
    (default: this one). Raises RuntimeError with the child's last error line when it fails.
    """

    def __init__(self, config: Any, batch: dict, python: str | None = None):
        module, self.library = twin_of(config.model.name)
        self._tmp = tempfile.TemporaryDirectory(prefix="tessera-twin-")
        batch_path = os.path.join(self._tmp.name, "batch.npz")
        np.savez(batch_path, **{k: np.asarray(v) for k, v in batch.items()})
        self._stderr = open(os.path.join(self._tmp.name, "stderr.txt"), "w+")
        self._proc = subprocess.Popen(
            [python or sys.executable, "-m", "tools.twin"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.info = self._call({"module": module, "config": config.to_json(),
                                "batch": batch_path})

    def _call(self, message: dict) -> dict:
        self._proc.stdin.write(json.dumps(message) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            lines = [x for x in self._stderr.read().splitlines() if x.strip()]
            self.close()
            raise RuntimeError(f"--compare: the PyTorch twin stopped: "
                               f"{lines[-1] if lines else 'no output'}")
        return json.loads(line)

    def step(self, kind: str = "train") -> float:
        """Runs one `kind` ('train' or 'forward') step in the child; returns its loss."""
        return float(self._call({"step": kind})["loss"])

    def finish(self) -> dict:
        """Returns the twin's info with its peak memory and ends the child."""
        info = {**self.info, **self._call({"finish": True})}
        self.close()
        return info

    def close(self) -> None:
        """Ends the child (if it still runs) and removes the batch file."""
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=60)
        self._stderr.close()
        self._tmp.cleanup()


def torch_runners(net: Any, forward: Any, loss_of: Any, config: Any) -> tuple[dict, dict]:
    """Returns ({"train", "forward"} runners, info) for a torch module `net`.

    `forward()` runs `net` on the batch and returns its outputs; `loss_of(outputs)` is the
    scalar loss. The train step uses the config's AdamW (lr, weight decay, b1, b2) and
    gradient clipping, under bfloat16 autocast when the config's model dtype is bfloat16;
    the forward pass runs without gradients. info: params, torch version, threads.
    """
    import torch

    opt = config.optimizer
    if opt.name != "adamw":
        raise ValueError(f"--compare: config.optimizer.name={opt.name!r}; the PyTorch twin "
                         "is trained with AdamW only.")
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=float(opt.lr),
                                  weight_decay=float(opt.weight_decay),
                                  betas=(float(opt.get("b1", 0.9)), float(opt.get("b2", 0.999))))
    clip = opt.get("grad_clip_norm")
    dtypes = {str(v.get("dtype", "float32")) for v in [config.model, *config.model.values()]
              if hasattr(v, "get")}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="bfloat16" in dtypes)

    def train() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_of(forward())
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
        optimizer.step()
        return float(loss.detach())

    def infer() -> float:
        with torch.no_grad(), autocast:
            forward()
        return 0.0

    return {"train": train, "forward": infer}, {
        "params": int(sum(p.numel() for p in net.parameters())),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count()}


def serve() -> None:
    """The child's loop: builds the twin from the first message, then runs the steps asked
    for, one JSON line in, one out. Library output goes to stderr."""
    import ml_collections

    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # Keep the pipe for the answers.
    setup = json.loads(sys.stdin.readline())
    module = importlib.import_module(setup["module"])
    config = ml_collections.ConfigDict(json.loads(setup["config"]))
    with np.load(setup["batch"], allow_pickle=False) as f:
        batch = {k: f[k] for k in f.files}
    runners, info = module.prepare(config, batch)
    info["peak_memory_before_steps_bytes"] = process_memory.process_peak_rss_bytes()
    out.write(json.dumps(info) + "\n")
    out.flush()
    for line in sys.stdin:
        message = json.loads(line)
        if "finish" in message:
            out.write(json.dumps({"peak_memory_bytes": process_memory.process_peak_rss_bytes(),
                                  "peak_memory_source": "twin process peak RSS"}) + "\n")
            out.flush()
            return
        start = time.perf_counter()
        loss = runners[message["step"]]()
        out.write(json.dumps({"loss": loss, "seconds": time.perf_counter() - start}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
