// How each voxel plane is shown: which held axis is axial/coronal/sagittal, which in-plane
// axis runs across the screen, and the flips that give the radiological convention (patient
// right on screen left; anterior up in axial; superior up in coronal and sagittal).
//
// Session conventions: voxel index [z, y, x]; the affine maps voxel (x, y, z) to RAS mm, so
// the world direction of voxel axis z is affine column 2, of y column 1, of x column 0.

export const AXES = ['z', 'y', 'x'];
const AFFINE_COLUMN = { z: 2, y: 1, x: 0 };

// per plane: the world direction (RAS unit vector index, sign) that should point screen-right
// and screen-down
const WANT = {
  axial: { right: [0, -1], down: [1, -1] }, // right -> patient left (-R), down -> posterior (-A)
  coronal: { right: [0, -1], down: [2, -1] }, // down -> inferior (-S)
  sagittal: { right: [1, -1], down: [2, -1] }, // right -> posterior: anterior on the left
};
const PLANE_OF_WORLD_AXIS = ['sagittal', 'coronal', 'axial']; // held axis mostly along R, A, S

function direction(affine, axis) {
  const c = AFFINE_COLUMN[axis];
  return [affine[0][c], affine[1][c], affine[2][c]];
}

function dominant(v) {
  let best = 0;
  for (let i = 1; i < 3; i++) if (Math.abs(v[i]) > Math.abs(v[best])) best = i;
  return best;
}

/**
 * Layout of the view that holds `axis` fixed. A plane arrives as rows x cols with rows/cols
 * the remaining voxel axes in z, y, x order (`rowAxis`, `colAxis`).
 * Returns {axis, plane, rowAxis, colAxis, transpose, flipX, flipY, sx, sy}: transpose puts
 * rows across the screen; flipX/flipY mirror the screen axes; sx/sy are the mm per pixel of
 * the screen's horizontal and vertical axes.
 */
export function viewLayout(session, axis) {
  const affine = session.affine;
  const [rowAxis, colAxis] = AXES.filter((a) => a !== axis);
  const plane = PLANE_OF_WORLD_AXIS[dominant(direction(affine, axis))];
  const want = WANT[plane];
  const rowDir = direction(affine, rowAxis);
  const colDir = direction(affine, colAxis);
  // the in-plane axis most along the wanted screen-right direction goes across
  const transpose = Math.abs(rowDir[want.right[0]]) > Math.abs(colDir[want.right[0]]);
  const across = transpose ? rowDir : colDir;
  const down = transpose ? colDir : rowDir;
  const spacing = Object.fromEntries(AXES.map((a, i) => [a, session.spacing[i]]));
  return {
    axis, plane, rowAxis, colAxis, transpose,
    flipX: Math.sign(across[want.right[0]]) === -want.right[1],
    flipY: Math.sign(down[want.down[0]]) === -want.down[1],
    sx: spacing[transpose ? rowAxis : colAxis],
    sy: spacing[transpose ? colAxis : rowAxis],
  };
}

/** [z, y, x] of plane pixel (row, col) on the view holding `axis` at `index`. */
export function voxelOf(axis, index, row, col) {
  if (axis === 'z') return [index, row, col];
  if (axis === 'y') return [row, index, col];
  return [row, col, index];
}

/** [row, col] of voxel [z, y, x] on a view holding `axis`. */
export function pixelOf(axis, zyx) {
  if (axis === 'z') return [zyx[1], zyx[2]];
  if (axis === 'y') return [zyx[0], zyx[2]];
  return [zyx[0], zyx[1]];
}
