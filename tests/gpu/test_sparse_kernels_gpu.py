"""2:4 checkpoints on CUDA: torch's semi-structured kernels run them (skipped without CUDA)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_a_two_four_model_runs_on_semi_structured_kernels_with_the_dense_logits(
    dtype: str,
) -> None:
    from torch.sparse import SparseSemiStructuredTensor

    from greenprune.core import kernels
    from tests.unit.test_kernels import _model, _two_four

    model = _model()
    manifest = {**_two_four(model), "dtype": dtype}
    model = model.to(device="cuda:0", dtype=getattr(torch, dtype))
    tokens = torch.randint(0, 128, (4, 32), device="cuda:0")
    with torch.no_grad():
        dense = model(input_ids=tokens).logits.float()
    path = kernels.prepare(model, manifest, "cuda:0")
    assert path.device == "cuda" and path.name.startswith("semi-structured 2:4 sparse")
    assert path.macs_skipped_share > 0
    linears = [m for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m.weight, SparseSemiStructuredTensor) for m in linears)
    with torch.no_grad():
        sparse = model(input_ids=tokens).logits.float()
    tolerance = 2e-2 if dtype == "float16" else 1e-3
    assert torch.allclose(sparse, dense, atol=tolerance, rtol=tolerance)
