"""Cross-language check: Python encoder -> JS decoder (protocol/medseg_protocol/maskcodec.js),
and the JS codec's own unit tests (tests/protocol/maskcodec.test.mjs).

Python encodes seeded random masks and deltas, a small Node script decodes /
applies them with the JS codec (and re-encodes them with the JS encoder), and
the results are compared here bit for bit.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medseg_protocol.codec import apply_delta, decode_mask, encode_delta, encode_mask

NODE = shutil.which("node")
ROOT = Path(__file__).resolve().parents[2]
MASKCODEC = ROOT / "protocol" / "medseg_protocol" / "maskcodec.js"

pytestmark = pytest.mark.skipif(
    NODE is None, reason="`node` is not on PATH; cannot run the JS codec"
)

RUNNER = r"""
import { readFileSync } from 'node:fs';
import {
  decodeMask, applyDelta, encodeMask, encodeDelta, base64ToBytes, bytesToBase64,
} from %(url)s;

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const results = cases.map((c) => {
  try {
    if (c.kind === 'mask') {
      const { shape, data } = decodeMask(c.msg);
      return { shape, data: bytesToBase64(data), reencoded: encodeMask(data, shape) };
    }
    if (c.kind === 'delta') {
      const mask = base64ToBytes(c.old);
      const out = applyDelta(mask, c.shape, c.msg);
      if (out !== mask) throw new Error('applyDelta must return its argument');
      const reencoded = encodeDelta(base64ToBytes(c.old), out, c.shape, {
        fromRevision: c.msg.from_revision, toRevision: c.msg.to_revision,
      });
      return { shape: c.shape, data: bytesToBase64(out), reencoded };
    }
    if (c.kind === 'bad') {
      decodeMask(c.msg);
      return { error: null };
    }
    throw new Error('unknown case kind ' + c.kind);
  } catch (e) {
    return { error: String(e.message) };
  }
});
process.stdout.write(JSON.stringify(results));
"""


def _u8_b64(mask: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()).decode()


def _random_mask(rng: np.random.Generator, shape) -> np.ndarray:
    kind = rng.integers(0, 5)
    if kind == 0:
        return np.zeros(shape, bool)
    if kind == 1:
        return np.ones(shape, bool)
    if kind == 2:  # a blob
        z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        c = [rng.uniform(0, s) for s in shape]
        r = rng.uniform(0.5, max(shape) / 2)
        return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < r * r
    return rng.random(shape) < rng.uniform(0.02, 0.7)


def _cases():
    rng = np.random.default_rng(20240611)
    cases, expected = [], []
    for i in range(120):
        shape = (
            1 if i % 3 == 0 else int(rng.integers(1, 10)),
            int(rng.integers(1, 14)),
            int(rng.integers(1, 14)),
        )
        old = _random_mask(rng, shape)
        new = old.copy() if i % 10 == 0 else _random_mask(rng, shape)
        if i % 4 == 1:  # local edit, like a click
            new = old.copy()
            z, y, x = (int(rng.integers(0, s)) for s in shape)
            new[z, max(0, y - 2) : y + 2, max(0, x - 3) : x + 3] ^= True
        cases.append({"kind": "mask", "msg": encode_mask(new)})
        expected.append(("mask", new, cases[-1]["msg"]))
        rev = None if i % 5 == 0 else i
        d = encode_delta(old, new, rev, None if rev is None else rev + 1)
        cases.append({"kind": "delta", "msg": d, "old": _u8_b64(old), "shape": list(shape)})
        expected.append(("delta", new, d))
    # a larger volume with multi-byte varints
    big = np.zeros((20, 128, 128), bool)
    big[3:17, 10:120, 5:100] = True
    big[8, 50:60, 50:60] = False
    big_new = big.copy()
    big_new[0:20, 0:64, 0:64] ^= True
    cases.append({"kind": "mask", "msg": encode_mask(big)})
    expected.append(("mask", big, cases[-1]["msg"]))
    d = encode_delta(big, big_new, 41, 42)
    cases.append({"kind": "delta", "msg": d, "old": _u8_b64(big), "shape": list(big.shape)})
    expected.append(("delta", big_new, d))
    return cases, expected


def _run_node(tmp_path: Path, cases) -> list:
    vec = tmp_path / "vectors.json"
    vec.write_text(json.dumps(cases))
    script = tmp_path / "run_codec.mjs"
    script.write_text(RUNNER % {"url": json.dumps(MASKCODEC.as_uri())})
    proc = subprocess.run(
        [NODE, str(script), str(vec)], check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"node failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_js_decodes_python_vectors(tmp_path):
    cases, expected = _cases()
    results = _run_node(tmp_path, cases)
    assert len(results) == len(expected)
    for n, ((kind, want, msg), res) in enumerate(zip(expected, results)):
        assert "error" not in res, f"case {n} ({kind}): JS raised {res['error']}"
        assert res["shape"] == list(want.shape), f"case {n}"
        got = np.frombuffer(base64.b64decode(res["data"]), np.uint8).reshape(want.shape)
        assert set(np.unique(got)) <= {0, 1}, f"case {n}: JS output not 0/1"
        np.testing.assert_array_equal(got.astype(bool), want, err_msg=f"case {n} ({kind})")
        # JS encoder produces byte-identical (canonical) messages ...
        assert res["reencoded"] == msg, f"case {n} ({kind}): JS encoding differs"
        # ... which the Python decoder accepts
        if kind == "mask":
            np.testing.assert_array_equal(decode_mask(res["reencoded"]), want)
        else:
            old = cases[n]["old"]
            old_arr = np.frombuffer(base64.b64decode(old), np.uint8).reshape(want.shape)
            np.testing.assert_array_equal(apply_delta(old_arr, res["reencoded"]), want)


def test_js_rejects_malformed(tmp_path):
    good = encode_mask(np.ones((1, 2, 3), bool))  # runs [0, 6]
    bad = [
        {**good, "encoding": "rle/7"},
        {**good, "data": base64.b64encode(b"\x00\x07").decode()},  # past the box
        {**good, "data": base64.b64encode(b"\x00\x05").decode()},  # short of it
        {**good, "data": base64.b64encode(b"\x00\x86").decode()},  # truncated varint
        {**good, "bbox": [0, 0, 0, 1, 2, 4]},  # outside shape
    ]
    results = _run_node(tmp_path, [{"kind": "bad", "msg": m} for m in bad])
    for m, res in zip(bad, results):
        assert res["error"], f"JS accepted malformed message {m}"
        with pytest.raises(ValueError):
            decode_mask(m)
    assert "unknown encoding" in results[0]["error"]


def test_js_codec_unit_tests_pass_and_pin_the_versions():
    result = subprocess.run(
        [NODE, "--test", "tests/protocol/"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "versions.json" in result.stdout
