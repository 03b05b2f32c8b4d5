// node --test clients/web/test/: the viewer's pure modules.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { pixelOf, viewLayout, voxelOf } from '../js/orientation.js';

const session = (affine, shape = [30, 101, 122], spacing = [3, 3, 3]) => ({ affine, shape, spacing });

test('DICOM (LPS rows/cols, z up): axial needs no flip, coronal/sagittal put superior up', () => {
  const dicom = session([[-0.98, 0, 0, 0], [0, -0.98, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]], [20, 512, 512], [2, 0.98, 0.98]);
  const axial = viewLayout(dicom, 'z');
  assert.equal(axial.plane, 'axial');
  assert.deepEqual([axial.transpose, axial.flipX, axial.flipY], [false, false, false]);
  assert.deepEqual([axial.sx, axial.sy], [0.98, 0.98]);
  const coronal = viewLayout(dicom, 'y');
  assert.equal(coronal.plane, 'coronal');
  assert.deepEqual([coronal.transpose, coronal.flipX, coronal.flipY], [false, false, true]);
  assert.deepEqual([coronal.sx, coronal.sy], [0.98, 2]);
  const sagittal = viewLayout(dicom, 'x');
  assert.equal(sagittal.plane, 'sagittal');
  // y runs to posterior (-A) already: anterior on the left, no flip across
  assert.deepEqual([sagittal.transpose, sagittal.flipX, sagittal.flipY], [false, false, true]);
});

test('RAS NIfTI: axial flips both axes (patient right on screen left, anterior up)', () => {
  const ras = session([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]);
  const axial = viewLayout(ras, 'z');
  assert.deepEqual([axial.transpose, axial.flipX, axial.flipY], [false, true, true]);
  assert.equal(viewLayout(ras, 'x').flipX, true);
});

test('a volume stored sagittally: the held voxel axis z is named sagittal, in-plane axes transposed when needed', () => {
  // voxel x -> A, voxel y -> S, voxel z -> R
  const affine = [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]];
  const z = viewLayout(session(affine), 'z');
  assert.equal(z.plane, 'sagittal');
  // rows are y (S), cols are x (A): across should be -A (cols, flipped), down -S (rows, flipped)
  assert.deepEqual([z.transpose, z.flipX, z.flipY], [false, true, true]);
  const y = viewLayout(session(affine), 'y'); // holds y (S): axial; rows z (R), cols x (A)
  assert.equal(y.plane, 'axial');
  assert.equal(y.transpose, true); // rows (R) go across
});

test('voxelOf and pixelOf are inverse on every axis', () => {
  for (const axis of ['z', 'y', 'x']) {
    const zyx = voxelOf(axis, 7, 3, 5);
    assert.equal(zyx['zyx'.indexOf(axis)], 7);
    assert.deepEqual(pixelOf(axis, zyx), [3, 5]);
  }
});
