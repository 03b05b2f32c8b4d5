import assert from 'node:assert/strict';
import { test } from 'node:test';

import { diceSummary, metricLabel } from '../js/metrics.js';

test('model card metric keys get labels', () => {
  assert.equal(metricLabel('dice_held_out'), 'held-out organs');
  assert.equal(metricLabel('dice_seen'), 'seen organs');
  assert.equal(metricLabel('dice_held_out_start'), 'held-out organs, imperfect start mask');
  assert.equal(metricLabel('dice_seen_brush'), 'seen organs, after a brush edit');
  assert.equal(metricLabel('dice_held_out_none'), 'held-out organs, no edit');
  assert.equal(metricLabel('dice'), 'all cases');
  assert.equal(metricLabel('dice_other_thing'), 'other thing');
});

test('the summary lists Dice metrics only, two decimals, no raw keys', () => {
  const text = diceSummary({ protocol: 'x', dice_held_out: 0.8447, dice_seen: 0.8133, box_margin_voxels: 5 });
  assert.equal(text, 'Dice: held-out organs 0.84; seen organs 0.81');
  assert.ok(!text.includes('_'));
  assert.equal(diceSummary({ box_margin_voxels: 5 }), '');
});
