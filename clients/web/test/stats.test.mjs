import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SegmentStats, formatMl, voxelMl } from '../js/stats.js';

function randomMask(shape, seed) {
  const data = new Uint8Array(shape[0] * shape[1] * shape[2]);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[i] = s % 7 === 0 ? 1 : 0;
  }
  return data;
}

function truth(data, [Z, Y, X]) {
  let n = 0;
  const seen = { z: new Set(), y: new Set(), x: new Set() };
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    if (data[(z * Y + y) * X + x]) {
      n++;
      seen.z.add(z); seen.y.add(y); seen.x.add(x);
    }
  }
  const r = (set) => (set.size ? [Math.min(...set), Math.max(...set)] : null);
  return { voxels: n, range: { z: r(seen.z), y: r(seen.y), x: r(seen.x) } };
}

test('volume is voxels times the voxel volume, in mL', () => {
  assert.equal(voxelMl([2, 0.5, 0.5]), 0.0005);
  const shape = [4, 5, 6];
  const stats = new SegmentStats(shape, [3, 2, 2]);
  const data = new Uint8Array(120);
  data[(1 * 5 + 2) * 6 + 3] = 1;
  data[(2 * 5 + 4) * 6 + 0] = 1;
  stats.update(7, data);
  const got = stats.get(7);
  assert.equal(got.voxels, 2);
  assert.ok(Math.abs(got.ml - 2 * 12 / 1000) < 1e-12);
  assert.deepEqual(got.range, { z: [1, 2], y: [2, 4], x: [0, 3] });
});

test('incremental updates in a box agree with a full recount', () => {
  const shape = [9, 11, 13];
  const stats = new SegmentStats(shape, [1, 1, 1]);
  const data = randomMask(shape, 3);
  stats.update(1, data);
  let s = 99;
  for (let k = 0; k < 40; k++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const z0 = s % 9; const y0 = (s >> 4) % 11; const x0 = (s >> 8) % 13;
    const z1 = Math.min(9, z0 + 1 + (s >> 12) % 4);
    const y1 = Math.min(11, y0 + 1 + (s >> 14) % 5);
    const x1 = Math.min(13, x0 + 1 + (s >> 16) % 6);
    for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
      data[(z * 11 + y) * 13 + x] = k % 3 === 0 ? 0 : (x + y + k) % 2;
    }
    stats.update(1, data, [z0, y0, x0, z1, y1, x1]);
    const want = truth(data, shape);
    const got = stats.get(1);
    assert.equal(got.voxels, want.voxels);
    assert.deepEqual(got.range, want.range);
  }
  data.fill(0);
  stats.update(1, data, [0, 0, 0, 9, 11, 13]);
  assert.deepEqual(stats.get(1), { voxels: 0, ml: 0, range: { z: null, y: null, x: null } });
});

test('formatMl keeps sensible precision', () => {
  assert.equal(formatMl(0), '0 mL');
  assert.equal(formatMl(0.0123), '0.012 mL');
  assert.equal(formatMl(12.345), '12.3 mL');
  assert.equal(formatMl(1534.6), '1535 mL');
});
