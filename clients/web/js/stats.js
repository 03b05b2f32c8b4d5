// Segment statistics from the masks the viewer holds: voxel count, volume in mL (voxels x the
// voxel volume from the session spacing) and the range of slices along each axis that hold any
// of the segment. Kept up to date incrementally: per-slice voxel counts along each axis, of
// which a change recounts only the slices its bbox touches. No DOM here (node-testable).

/** Voxel volume in mL from a spacing [sz, sy, sx] in mm. */
export function voxelMl(spacing) {
  return (spacing[0] * spacing[1] * spacing[2]) / 1000;
}

export class SegmentStats {
  /** shape [Z, Y, X]; spacing [sz, sy, sx] mm. */
  constructor(shape, spacing) {
    this.shape = shape;
    this.voxelMl = voxelMl(spacing);
    // segment id -> per-slice counts: z (Z), y (Y), x (X), and per plane row / column:
    // rows (Z*Y: voxels in row y of slice z), cols (Z*X), total
    this.counts = new Map();
  }

  forget(id) { this.counts.delete(id); }

  /**
   * Recount segment `id` (mask data: Uint8Array(Z*Y*X), C order) in the z slices of the
   * half-open box [z0, y0, x0, z1, y1, x1] (default: every slice). Each touched slice is
   * recounted whole, in one pass: Y*X work per slice.
   */
  update(id, data, bbox = null) {
    const [Z, Y, X] = this.shape;
    let held = this.counts.get(id);
    if (!held || !bbox) {
      held = {
        z: new Int32Array(Z), y: new Int32Array(Y), x: new Int32Array(X),
        rows: new Int32Array(Z * Y), cols: new Int32Array(Z * X), total: 0,
      };
      this.counts.set(id, held);
      bbox = [0, 0, 0, Z, Y, X];
    }
    const z0 = Math.max(0, bbox[0]);
    const z1 = Math.min(Z, bbox[3]);
    const cols = new Int32Array(X);
    for (let z = z0; z < z1; z++) {
      cols.fill(0);
      let inSlice = 0;
      let i = z * Y * X;
      for (let y = 0; y < Y; y++) {
        let inRow = 0;
        for (let x = 0; x < X; x++, i++) {
          if (data[i]) {
            inRow++;
            cols[x]++;
          }
        }
        const r = z * Y + y;
        held.y[y] += inRow - held.rows[r];
        held.rows[r] = inRow;
        inSlice += inRow;
      }
      for (let x = 0; x < X; x++) {
        const c = z * X + x;
        held.x[x] += cols[x] - held.cols[c];
        held.cols[c] = cols[x];
      }
      held.total += inSlice - held.z[z];
      held.z[z] = inSlice;
    }
  }

  /** {voxels, ml, range: {z: [first, last] | null, y, x}} (0-based slice indices). */
  get(id) {
    const held = this.counts.get(id);
    if (!held) return null;
    const range = (counts) => {
      let first = -1;
      let last = -1;
      for (let i = 0; i < counts.length; i++) {
        if (counts[i]) {
          if (first < 0) first = i;
          last = i;
        }
      }
      return first < 0 ? null : [first, last];
    };
    return {
      voxels: held.total,
      ml: held.total * this.voxelMl,
      range: { z: range(held.z), y: range(held.y), x: range(held.x) },
    };
  }
}

/** "12.3 mL" with sensible precision (tiny volumes keep more digits). */
export function formatMl(ml) {
  if (ml === 0) return '0 mL';
  if (ml < 1) return `${ml.toFixed(3)} mL`;
  if (ml < 100) return `${ml.toFixed(1)} mL`;
  return `${Math.round(ml)} mL`;
}
