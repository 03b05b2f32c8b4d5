// A NIfTI-1 file (.nii, gzipped to .nii.gz where the browser has CompressionStream) of the
// label map made from the masks the viewer holds: what can still be saved when the session is
// gone from the server. Same geometry and label values as the server's export: voxels in
// (x fastest) order, the session's affine as the sform, later segments win where they overlap.
// No DOM here (node-testable).

const HEADER = 348;
const OFFSET = 352; // header + the 4-byte extension flag

/** The label map (Uint8Array or Uint16Array, C order [Z, Y, X]) from [{label, data}]. */
export function labelMap(shape, layers) {
  const n = shape[0] * shape[1] * shape[2];
  const wide = layers.some((l) => l.label > 255);
  const out = wide ? new Uint16Array(n) : new Uint8Array(n);
  for (const { label, data } of layers) {
    for (let i = 0; i < n; i++) if (data[i]) out[i] = label;
  }
  return out;
}

/** NIfTI-1 bytes of `labels` in a session's geometry ({shape, spacing, affine}). */
export function niftiBytes(record, labels, description = 'medseg labels') {
  const [Z, Y, X] = record.shape;
  const [sz, sy, sx] = record.spacing;
  const bytes = new Uint8Array(OFFSET + labels.byteLength);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, HEADER, true);
  [3, X, Y, Z, 1, 1, 1, 1].forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  const wide = labels.BYTES_PER_ELEMENT === 2;
  v.setInt16(70, wide ? 512 : 2, true); // datatype: uint16 / uint8
  v.setInt16(72, wide ? 16 : 8, true); // bitpix
  [1, sx, sy, sz, 1, 1, 1, 1].forEach((d, i) => v.setFloat32(76 + 4 * i, d, true));
  v.setFloat32(108, OFFSET, true); // vox_offset
  v.setFloat32(112, 1, true); // scl_slope
  v.setUint8(123, 2); // xyzt_units: mm
  const text = new TextEncoder().encode(description.slice(0, 79));
  bytes.set(text, 148); // descrip
  v.setInt16(252, 0, true); // qform_code
  v.setInt16(254, 2, true); // sform_code: aligned to the scanner, as the input's affine
  record.affine.slice(0, 3).forEach((row, r) => {
    row.forEach((value, c) => v.setFloat32(280 + 16 * r + 4 * c, value, true));
  });
  bytes.set([0x6e, 0x2b, 0x31, 0], 344); // "n+1\0"
  const body = new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength);
  bytes.set(body, OFFSET); // little-endian, as every browser is
  return bytes;
}

/** gzip `bytes` when the runtime can (Blob + CompressionStream); resolves to {bytes, gzip}. */
export async function gzip(bytes) {
  if (typeof CompressionStream === 'undefined') return { bytes, gzip: false };
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return { bytes: new Uint8Array(await new Response(stream).arrayBuffer()), gzip: true };
}
