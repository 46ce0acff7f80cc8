import numpy as np
import pytest

from sonoedge import zoo
from sonoedge.errors import ConfigError
from sonoedge.processing import registry
from sonoedge.processing.ulm import UlmResult


def _ensemble(seed=0, n=8, h=12, w=10):
    rng = np.random.default_rng(seed)
    shape = (n, h, w)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_every_op_has_methods_with_docs():
    assert set(registry.METHODS) == set(registry.OPS)
    for op, methods in registry.METHODS.items():
        assert methods, op
        for name, fn in methods.items():
            assert registry.describe(fn), (op, name)


STUDENTS = {name for names in zoo.shipped_methods().values() for name in names}


@pytest.mark.parametrize(
    ("op", "name"),
    [(op, name) for op in registry.OPS for name in registry.METHODS[op] if name not in STUDENTS],
)
def test_classical_methods_run_with_defaults(op, name):
    fn = registry.get_method(op, name)
    iq = _ensemble()
    if op == "bmode":
        out = fn(iq[0])
        assert out.shape == (12, 10) and out.min() >= 0 and out.max() <= 1
    elif op == "doppler":
        out = fn(iq)
        assert out.shape == (12, 10) and out.max() == pytest.approx(0.0)
    elif op in ("despeckle", "enhance"):
        img = np.abs(iq[0]).astype(np.float32)
        assert fn(img).shape == img.shape
    else:
        res = fn(np.abs(iq), (1e-4, 1e-4), 2e-4, 1000.0, min_track_length=1)
        assert isinstance(res, UlmResult) and res.density.shape == (60, 50)


def test_register_and_lookup_errors():
    registry.register("despeckle", "identity", lambda image: image, native_spacing_m=(1e-4, 1e-4))
    try:
        assert (
            registry.get_method("despeckle", "identity")
            is registry.METHODS["despeckle"]["identity"]
        )
        assert registry.NATIVE_SPACING_M[("despeckle", "identity")] == (1e-4, 1e-4)
    finally:
        del registry.METHODS["despeckle"]["identity"]
        del registry.NATIVE_SPACING_M[("despeckle", "identity")]
    with pytest.raises(ConfigError, match="srad"):
        registry.get_method("despeckle", "nope")
    with pytest.raises(ConfigError, match="op"):
        registry.get_method("nope", "srad")
