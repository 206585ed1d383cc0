"""The OpenVINO encoder, the default: the ONNX embedder's fp32 graph (the same folder, the same tokenising and
pooling), compiled by OpenVINO's CPU plugin instead of run by ONNX Runtime.

OpenVINO chooses the precision of the arithmetic for the CPU: bfloat16 where the CPU computes it natively (AVX-512
BF16 or AMX), fp32 elsewhere. The weights stay fp32 on disk, so one model folder serves both kinds of machine.

Training embeds its corpus with it too. bfloat16 moves an embedding by about 1e-5 (cosine 0.99999 to fp32), and
UMAP, the clusters and the mixtures' cuts turn any change of the last digits into another model; but so does another
CPU in fp32: ONNX Runtime's fp32 training gave another panel on an Intel AMX machine than on an AMD one (BBC 0.958
against 0.960, mission paragraphs 0.828 against 0.841). Measured on both machines, bfloat16 training moved the panel's
mean by -0.3 and +0.3 points, the size of that noise, and it embeds a corpus 1.8x (AMD, AVX-512 BF16) to 3.2x (Intel,
AMX) faster than ONNX Runtime's fp32 (BENCHMARKS.md, "The accuracy panel")."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import UserInputError
from .onnx_embed import OnnxEmbedder, thread_count

log = logging.getLogger(__name__)

OPENVINO_INSTALL = 'pip install "openvino>=2024.0"'   # a dependency of the package; named where it is missing


def _compiled_cache() -> str | None:
    """Where OpenVINO keeps the compiled graph (a second compile takes 0.1 s instead of 0.9 s on two cores): under
    the tool's cache, or nowhere when that cannot be written."""
    from .embed import check_cache_dir, default_cache_dir

    folder = default_cache_dir() / "openvino"
    try:
        check_cache_dir(folder)
    except UserInputError:
        return None
    return str(folder)


@lru_cache(maxsize=1)
def cpu_precision() -> str:
    """The precision OpenVINO's CPU plugin computes in on this machine unless told: "bf16" where the CPU has it
    natively, "f32" elsewhere."""
    import openvino as ov

    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


class OpenVinoEmbedder(OnnxEmbedder):
    """`openvino` or `openvino:<model>`: the fp32 ONNX export, compiled by OpenVINO for this CPU.

    precision: "bf16" or "f32" (None: what this CPU computes in by default). It is part of the id: the same graph
    gives vectors up to 1e-3 apart in bf16 and f32, so a shared cache or a Ray cluster of mixed CPUs must not mix
    them."""

    KIND = "openvino"

    def __init__(self, path: str | Path, spec: str, batch_size: int = OnnxEmbedder.BATCH,
                 precision: str | None = None):
        try:
            import openvino  # noqa: F401  (here, so that a missing package is named before any work)
        except ImportError:
            raise UserInputError(f"the OpenVINO embedder ({spec}) needs openvino: {OPENVINO_INSTALL}") from None
        super().__init__(path, spec, batch_size)
        # Decided here, not at the compile, so that the id is known before any text is embedded (the cache's key).
        self.precision = precision or cpu_precision()
        self.id = "ov:" + self.id.removeprefix("ort:") + f"@{self.precision}"
        self._request = None

    def __reduce__(self):
        """Pickled with its precision: a Ray worker computes as the driver does, so the vectors fit its cache keys."""
        return type(self), (self.path, self.spec, self.batch_size, self.precision)

    @property
    def session(self):
        """The compiled graph, made on the first encode (or at ThemeTagger.load) with set_threads' count."""
        if self._session is None:
            import openvino as ov

            core = ov.Core()
            if (cache := _compiled_cache()) is not None:
                core.set_property({"CACHE_DIR": cache})
            # LATENCY: one stream of batches on all the threads, as encode sends them (THROUGHPUT's parallel
            # streams ran no faster on two cores and need concurrent requests).
            session = core.compile_model(str(self.path / "model.onnx"), "CPU",
                                         {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": thread_count(),
                                          "INFERENCE_PRECISION_HINT": self.precision})
            used = session.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            if used != self.precision:   # vectors of another precision must not carry this id
                raise UserInputError(f"OpenVINO computes in {used} on this CPU, not in the {self.precision} this "
                                     f"embedder's id names; embed on machines of one kind")
            self._session, self._request = session, session.create_infer_request()
            self.inputs = {i.get_any_name() for i in self._session.inputs}
            log.info("OpenVINO compiled %s for this CPU, computing in %s", self.path.name, self.precision)
        return self._session

    def width(self) -> int:
        width = self.session.outputs[0].get_partial_shape()[-1]
        return width.get_length() if width.is_static else 0

    def infer(self, tokens: dict[str, np.ndarray]) -> np.ndarray:
        self.session
        return self._request.infer({k: v for k, v in tokens.items() if k in self.inputs})[0]
