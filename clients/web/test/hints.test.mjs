import assert from 'node:assert/strict';
import { test } from 'node:test';

import { hintRect, hintText, hintTitle, hintsCurrent, refetchDue } from '../js/hints.js';
import { organLabel, organTarget, organsOffered } from '../js/organ.js';

const box = { lo: [4, 20, 30], hi: [9, 41, 52] };

test('a hint box is outlined around its voxels on every slice it covers, and only there', () => {
  // axial (z) view: rows along y, columns along x
  assert.deepEqual(hintRect(box, 'z', 4, 'y', 'x'), { r0: 20, c0: 30, r1: 42, c1: 53 });
  assert.deepEqual(hintRect(box, 'z', 9, 'y', 'x'), { r0: 20, c0: 30, r1: 42, c1: 53 });
  assert.equal(hintRect(box, 'z', 3, 'y', 'x'), null);
  assert.equal(hintRect(box, 'z', 10, 'y', 'x'), null);
  // coronal (y) view: rows along z, columns along x; sagittal (x): rows z, columns y
  assert.deepEqual(hintRect(box, 'y', 20, 'z', 'x'), { r0: 4, c0: 30, r1: 10, c1: 53 });
  assert.equal(hintRect(box, 'y', 42, 'z', 'x'), null);
  assert.deepEqual(hintRect(box, 'x', 52, 'z', 'y'), { r0: 4, c0: 20, r1: 10, c1: 42 });
  // a transposed layout swaps rows and columns
  assert.deepEqual(hintRect(box, 'x', 30, 'y', 'z'), { r0: 20, c0: 4, r1: 42, c1: 10 });
  // a one-voxel box is one pixel wide
  assert.deepEqual(hintRect({ lo: [1, 2, 3], hi: [1, 2, 3] }, 'z', 1, 'y', 'x'), { r0: 2, c0: 3, r1: 3, c1: 4 });
});

test('a hint reads as what to do, its size in mL and its likelihood', () => {
  const hint = { rank: 2, kind: 'missing', centre: [6, 30, 40], box, voxels: 480, volume_ml: 12.96,
    likelihood: 0.6417, sources: { graphcut: 0.617, shape: 0.658 } };
  assert.equal(hintText(hint), 'add · 13.0 mL · 64 %');
  assert.equal(hintText({ ...hint, kind: 'extra', volume_ml: 0.25, likelihood: 0.5 }), 'remove · 0.250 mL · 50 %');
  const title = hintTitle(hint);
  assert.match(title, /^#2: probably missing/);
  assert.match(title, /centre \[z y x\] 6 30 40/);
  assert.match(title, /box 4 20 30 – 9 41 52 · 480 voxels/);
  assert.match(title, /graphcut 62 %, shape 66 %/);
});

test('hints hold only for the segment and revision they were computed on', () => {
  const result = { segmentId: 2, revision: 5 };
  assert.equal(hintsCurrent(result, 2, 5), true);
  assert.equal(hintsCurrent(result, 2, 6), false); // the segment moved on (a change, undo)
  assert.equal(hintsCurrent(result, 3, 5), false); // another segment is active
  assert.equal(hintsCurrent(result, 2, null), false); // the segment is gone
  assert.equal(hintsCurrent(null, 2, 5), false);
});

test('the open panel asks again only for a head it has neither an answer for nor a request in flight', () => {
  const head = { segmentId: 2, revision: 6 };
  assert.equal(refetchDue(head, { segmentId: 2, revision: 5 }, null), true); // the segment moved on
  assert.equal(refetchDue(head, { segmentId: 3, revision: 6 }, null), true); // another segment was shown
  assert.equal(refetchDue(head, null, null), true);
  assert.equal(refetchDue(head, { segmentId: 2, revision: 6 }, null), false); // answered already
  assert.equal(refetchDue(head, { segmentId: 2, revision: 5 }, { segmentId: 2, revision: 6 }), false); // in flight
  // a request in flight for an older revision does not stop the new head being due (asked after it)
  assert.equal(refetchDue(head, null, { segmentId: 2, revision: 5 }), true);
  assert.equal(refetchDue({ segmentId: 2, revision: null }, null, null), false); // mask not loaded
  assert.equal(refetchDue({ segmentId: null, revision: null }, null, null), false); // no segment
});

test('the organs offered are the organ model card\'s, when the server takes an organ start', () => {
  const caps = { interaction_types: ['click', 'organ'] };
  const models = { models: [
    { name: 'mideepseg-2d', task: 'mideepseg', organs: [] },
    { name: 'organnet-2d', task: 'organ', organs: ['liver', 'kidney_left'],
      metrics: { dice: { liver: 0.9394 } } },
  ] };
  assert.deepEqual(organsOffered(caps, models), [
    { name: 'liver', label: 'liver', dice: 0.9394 },
    { name: 'kidney_left', label: 'kidney left', dice: null },
  ]);
  assert.deepEqual(organsOffered({ interaction_types: ['click'] }, models), []);
  assert.deepEqual(organsOffered(caps, { models: [models.models[0]] }), []);
  assert.deepEqual(organsOffered(caps, null), []);
  assert.equal(organLabel('kidney_right'), 'kidney right');
});

test('an organ start reuses the active segment only when it is empty and named after the organ', () => {
  const preset = { id: 4, name: 'Kidney left' };
  assert.equal(organTarget(preset, 0, 'kidney_left'), 4);
  assert.equal(organTarget(preset, 12, 'kidney_left'), null); // it holds a mask: keep it
  assert.equal(organTarget(preset, null, 'kidney_left'), null); // not loaded yet
  assert.equal(organTarget({ id: 5, name: 'Segment 1' }, 0, 'liver'), null);
  assert.equal(organTarget(null, 0, 'liver'), null);
});
