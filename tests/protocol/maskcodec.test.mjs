// Run with: node --test tests/protocol/ (tests/protocol/test_codec_js.py runs it under pytest)
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ENCODING_DELTA,
  ENCODING_MASK,
  applyDelta,
  base64ToBytes,
  bboxOf,
  bytesToBase64,
  decodeMask,
  decodeRle,
  encodeDelta,
  encodeMask,
  encodeRle,
  MAX_VOXELS,
} from '../../protocol/medseg_protocol/maskcodec.js';

const VERSIONS = JSON.parse(readFileSync(
  new URL('../../protocol/medseg_protocol/versions.json', import.meta.url), 'utf8'));

test('constants are the ones versions.json pins', () => {
  assert.equal(ENCODING_MASK, VERSIONS.mask_encoding);
  assert.equal(ENCODING_DELTA, VERSIONS.delta_encoding);
  assert.equal(MAX_VOXELS, VERSIONS.max_voxels);
});

// Small deterministic PRNG (mulberry32) so failures are reproducible.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomMask(rand, shape, density) {
  const n = shape[0] * shape[1] * shape[2];
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = rand() < density ? 1 : 0;
  return m;
}

function roundTrip(data, shape) {
  const msg = JSON.parse(JSON.stringify(encodeMask(data, shape)));
  assert.equal(msg.encoding, ENCODING_MASK);
  const dec = decodeMask(msg);
  assert.deepEqual(dec.shape, shape);
  assert.deepEqual(dec.data, Uint8Array.from(data));
  return msg;
}

function deltaRoundTrip(a, b, shape) {
  const d = JSON.parse(JSON.stringify(encodeDelta(a, b, shape, { fromRevision: 3, toRevision: 4 })));
  assert.equal(d.encoding, ENCODING_DELTA);
  assert.equal(d.from_revision, 3);
  assert.equal(d.to_revision, 4);
  let changed = 0;
  for (let i = 0; i < a.length; i++) changed += a[i] ^ b[i];
  assert.equal(d.changed_voxels, changed);
  const copy = Uint8Array.from(a);
  const res = applyDelta(copy, shape, d);
  assert.equal(res, copy, 'applyDelta works in place and returns its argument');
  assert.deepEqual(copy, Uint8Array.from(b));
  return d;
}

test('empty mask', () => {
  const shape = [2, 3, 4];
  const msg = roundTrip(new Uint8Array(24), shape);
  assert.equal(msg.bbox, null);
  assert.equal(msg.data, '');
});

test('full mask', () => {
  const shape = [3, 4, 5];
  const msg = roundTrip(new Uint8Array(60).fill(1), shape);
  assert.deepEqual(msg.bbox, [0, 0, 0, 3, 4, 5]);
  // runs: 0 zeros, 60 ones
  assert.deepEqual(base64ToBytes(msg.data), Uint8Array.from([0, 60]));
});

test('one voxel at each corner (2D and 3D)', () => {
  for (const shape of [[1, 5, 7], [4, 5, 6]]) {
    const [Z, Y, X] = shape;
    for (const z of new Set([0, Z - 1])) for (const y of [0, Y - 1]) for (const x of [0, X - 1]) {
      const m = new Uint8Array(Z * Y * X);
      m[(z * Y + y) * X + x] = 1;
      const msg = roundTrip(m, shape);
      assert.deepEqual(msg.bbox, [z, y, x, z + 1, y + 1, x + 1]);
      assert.deepEqual(base64ToBytes(msg.data), Uint8Array.from([0, 1]));
    }
  }
});

test('random masks and deltas round trip', () => {
  const rand = rng(1234);
  for (let it = 0; it < 200; it++) {
    const shape = [1 + Math.floor(rand() * 6), 1 + Math.floor(rand() * 12), 1 + Math.floor(rand() * 12)];
    if (it % 3 === 0) shape[0] = 1;
    const a = randomMask(rand, shape, rand() * 0.6);
    const b = randomMask(rand, shape, rand() * 0.6);
    roundTrip(a, shape);
    roundTrip(b, shape);
    deltaRoundTrip(a, b, shape);
  }
});

test('identical old/new gives an empty delta; empty -> full', () => {
  const shape = [2, 3, 3];
  const a = randomMask(rng(7), shape, 0.5);
  const d = deltaRoundTrip(a, Uint8Array.from(a), shape);
  assert.equal(d.bbox, null);
  assert.equal(d.changed_voxels, 0);
  assert.equal(d.data, '');
  const full = deltaRoundTrip(new Uint8Array(18), new Uint8Array(18).fill(1), shape);
  assert.deepEqual(full.bbox, [0, 0, 0, 2, 3, 3]);
  assert.equal(full.changed_voxels, 18);
});

test('varints: multi-byte runs round trip', () => {
  const n = 300000;
  const flat = new Uint8Array(n);
  flat.fill(1, 200, 200 + 70000);
  flat[n - 1] = 1;
  const enc = encodeRle(flat);
  // 200 -> c8 01 ; 70000 -> f0 a2 04
  assert.deepEqual(Array.from(enc.subarray(0, 5)), [0xc8, 0x01, 0xf0, 0xa2, 0x04]);
  assert.deepEqual(decodeRle(enc, n), flat);
});

test('decodeRle rejects malformed streams', () => {
  assert.throws(() => decodeRle(Uint8Array.from([0x80]), 5), /truncated/);
  assert.throws(() => decodeRle(Uint8Array.from([3, 0x81]), 5), /truncated/);
  assert.throws(() => decodeRle(Uint8Array.from([3, 3]), 5), /exceed/);
  assert.throws(() => decodeRle(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 5), /exceed/);
  assert.throws(() => decodeRle(Uint8Array.from([2, 2]), 5), /sum to 4/);
  assert.throws(() => decodeRle(Uint8Array.from([]), 5), /sum to 0/);
  assert.throws(() => decodeRle(Uint8Array.from([2, 0, 3]), 5), /zero-length/);
  assert.throws(() => decodeRle(Uint8Array.from([0x82, 0x00, 3]), 5), /over-long/);
  assert.throws(() => decodeRle(new Uint8Array(10).fill(0x80), 5), /longer than 9/);
  assert.deepEqual(decodeRle(Uint8Array.from([0, 5]), 5), Uint8Array.from([1, 1, 1, 1, 1]));
});

test('message validation', () => {
  const shape = [1, 2, 2];
  const msg = encodeMask(Uint8Array.from([0, 1, 1, 0]), shape);
  assert.throws(() => decodeMask({ ...msg, encoding: 'rle/2' }), /unknown encoding "rle\/2"/);
  assert.throws(() => decodeMask({ ...msg, encoding: ENCODING_DELTA }), /expected encoding/);
  assert.throws(() => decodeMask({ ...msg, bbox: [0, 0, 0, 1, 2, 3] }), /outside shape/);
  assert.throws(() => decodeMask({ ...msg, data: '!!!' }), /base64/);
  assert.throws(() => decodeMask({ ...msg, bbox: null }), /must be empty/);
  assert.throws(() => decodeMask({ ...msg, shape: [4096, 4096, 4096] }), /exceeds/);
  const d = encodeDelta(new Uint8Array(4), Uint8Array.from([1, 0, 0, 0]), shape);
  assert.throws(() => applyDelta(new Uint8Array(6), [1, 2, 3], d), /does not match/);
  const m = new Uint8Array(4);
  assert.throws(() => applyDelta(m, shape, { ...d, changed_voxels: 2 }), /changed_voxels/);
  assert.deepEqual(m, new Uint8Array(4), 'mask untouched on error');
  assert.throws(() => applyDelta(m, shape, msg), /expected encoding "rle-xor\/1"/);
});

test('bboxOf and base64 helpers', () => {
  const shape = [2, 3, 4];
  const m = new Uint8Array(24);
  m[(1 * 3 + 1) * 4 + 2] = 1;
  m[(1 * 3 + 2) * 4 + 1] = 1;
  assert.deepEqual(bboxOf(m, shape), [1, 1, 1, 2, 3, 3]);
  const bytes = Uint8Array.from({ length: 70000 }, (_, i) => (i * 31) & 255);
  assert.deepEqual(base64ToBytes(bytesToBase64(bytes)), bytes);
});

test('large sphere round trip (timing printed)', () => {
  const shape = [64, 256, 256];
  const [Z, Y, X] = shape;
  const m = new Uint8Array(Z * Y * X);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    const dz = z - 32, dy = y - 128, dx = x - 128;
    if (dz * dz + dy * dy + dx * dx < 30 * 30) m[(z * Y + y) * X + x] = 1;
  }
  let t = performance.now();
  const msg = encodeMask(m, shape);
  const tEnc = performance.now() - t;
  t = performance.now();
  const dec = decodeMask(msg);
  const tDec = performance.now() - t;
  assert.deepEqual(dec.data, m);
  console.log(`# JS ${shape.join('x')}: encode ${tEnc.toFixed(1)} ms, decode ${tDec.toFixed(1)} ms`);
});
