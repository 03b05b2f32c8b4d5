import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PRESETS, autoWindow, looksLikeCt, renderGrey } from '../js/windowing.js';

test('renderGrey maps the window to 0..255 through the lookup table for int16', () => {
  const plane = { data: Int16Array.from([-1000, -150, 50, 250, 3000]) };
  const out = new Uint32Array(5);
  renderGrey(plane, PRESETS.abdomen, out); // 400/50: -150..250
  const grey = [...out].map((p) => p & 0xff);
  assert.deepEqual(grey, [0, 0, 127, 255, 255]);
  assert.ok([...out].every((p) => p >>> 24 === 0xff)); // opaque
});

test('renderGrey handles float planes without a table', () => {
  const out = new Uint32Array(3);
  renderGrey({ data: Float32Array.from([0, 0.5, 1]) }, { width: 1, center: 0.5 }, out);
  assert.deepEqual([...out].map((p) => p & 0xff), [0, 127, 255]);
});

test('autoWindow spans the 1st..99th percentile', () => {
  const data = Uint16Array.from({ length: 1000 }, (_, i) => i);
  const w = autoWindow(data);
  assert.equal(w.center - w.width / 2, 10);
  assert.equal(w.center + w.width / 2, 990);
});

test('looksLikeCt: the CT tag, or air around -1000 in an untagged int16 image', () => {
  assert.equal(looksLikeCt({ modality: 'CT' }, new Uint8Array(1)), true);
  assert.equal(looksLikeCt({ modality: 'MR' }, Int16Array.from([-1000])), false);
  assert.equal(looksLikeCt({ modality: 'unknown' }, Int16Array.from([-1000, 0, 40])), true);
  assert.equal(looksLikeCt({ modality: 'unknown' }, Int16Array.from([0, 400])), false);
});
