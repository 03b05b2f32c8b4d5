// Mask / mask-delta wire format codec: "rle/1" and "rle-xor/1".
// Specification: docs/mask-delta-format.md. Reference implementation: codec.py beside this
// file; the constants below must equal versions.json (tests/protocol/maskcodec.test.mjs).
//
// ES module, no dependencies; works in browsers and Node >= 20 (uses atob/btoa).
// Masks are Uint8Array(Z*Y*X) of 0/1, indexed (z, y, x) in C order
// (index = (z*Y + y)*X + x); a 2-D image has Z == 1.

export const ENCODING_MASK = 'rle/1';
export const ENCODING_DELTA = 'rle-xor/1';
/** Decoders refuse shapes with more voxels than this (2**31). */
export const MAX_VOXELS = 2 ** 31;

const MAX_VARINT_BYTES = 9;

// ---------------------------------------------------------------- base64

/** Decode standard (padded) base64 to a Uint8Array. Throws on invalid input. */
export function base64ToBytes(s) {
  if (typeof s !== 'string') throw new Error(`'data' must be a base64 string`);
  let bin;
  try {
    bin = atob(s);
  } catch (e) {
    throw new Error(`'data' is not valid base64: ${e.message}`);
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Encode a Uint8Array as standard padded base64. */
export function bytesToBase64(bytes) {
  let bin = '';
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return btoa(bin);
}

// ---------------------------------------------------------------- RLE

/**
 * Decode varint run lengths into a Uint8Array(size) of 0/1.
 * Throws on truncated / over-long / non-canonical varints, runs exceeding
 * `size` (checked before writing), runs summing short of `size`, or a
 * zero-length run other than the first.
 */
export function decodeRle(bytes, size) {
  if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad size ${size}`);
  const out = new Uint8Array(size);
  const n = bytes.length;
  let i = 0;
  let pos = 0;
  let run = 0;
  while (i < n) {
    let value = 0;
    let mul = 1;
    let len = 0;
    let b;
    do {
      if (i >= n) throw new Error('malformed RLE data: truncated varint at end of stream');
      if (len >= MAX_VARINT_BYTES) {
        throw new Error(`malformed RLE data: varint longer than ${MAX_VARINT_BYTES} bytes`);
      }
      b = bytes[i++];
      value += (b & 0x7f) * mul;
      mul *= 128;
      len++;
    } while (b & 0x80);
    if (len > 1 && b === 0) throw new Error('malformed RLE data: non-canonical (over-long) varint');
    if (value > size - pos) {
      throw new Error(`malformed RLE data: runs exceed the box (${size} voxels)`);
    }
    if (value === 0 && run > 0) {
      throw new Error('malformed RLE data: zero-length run after the first run');
    }
    if (run & 1) out.fill(1, pos, pos + value);
    pos += value;
    run++;
  }
  if (pos !== size) {
    throw new Error(`malformed RLE data: runs sum to ${pos}, box has ${size} voxels`);
  }
  return out;
}

function pushVarint(buf, len, v) {
  // v is a non-negative safe integer
  while (v >= 128) {
    buf[len++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[len++] = v;
  return len;
}

/** Run-length encode a 0/1 (or zero/non-zero) array into varint bytes. */
export function encodeRle(flat) {
  const n = flat.length;
  if (n === 0) return new Uint8Array(0);
  let buf = new Uint8Array(64);
  let len = 0;
  let cur = 0;
  let start = 0;
  for (let i = 0; i < n; i++) {
    const v = flat[i] ? 1 : 0;
    if (v !== cur) {
      if (len + 10 > buf.length) buf = grow(buf);
      len = pushVarint(buf, len, i - start);
      start = i;
      cur = v;
    }
  }
  if (len + 10 > buf.length) buf = grow(buf);
  len = pushVarint(buf, len, n - start);
  return buf.slice(0, len);
}

function grow(buf) {
  const b = new Uint8Array(buf.length * 2);
  b.set(buf);
  return b;
}

// ---------------------------------------------------------------- helpers

function checkShape(shape) {
  if (
    !Array.isArray(shape) || shape.length !== 3 ||
    !shape.every((s) => Number.isSafeInteger(s) && s >= 0)
  ) {
    throw new Error(`'shape' must be [Z, Y, X] non-negative ints, got ${JSON.stringify(shape)}`);
  }
  const vol = shape[0] * shape[1] * shape[2];
  if (vol > MAX_VOXELS) throw new Error(`shape ${JSON.stringify(shape)} exceeds ${MAX_VOXELS} voxels`);
  return vol;
}

function checkEncoding(obj, expected) {
  if (obj === null || typeof obj !== 'object') throw new Error('expected a JSON object');
  const enc = obj.encoding;
  if (enc === expected) return;
  if (enc === ENCODING_MASK || enc === ENCODING_DELTA) {
    throw new Error(`expected encoding ${JSON.stringify(expected)}, got ${JSON.stringify(enc)}`);
  }
  throw new Error(
    `unknown encoding ${JSON.stringify(enc)} (this codec supports "${ENCODING_MASK}" and ` +
      `"${ENCODING_DELTA}"; expected "${expected}")`,
  );
}

/** Validate a message; returns {shape, bbox, region} (region null when bbox null). */
function decodeBox(obj, expected) {
  checkEncoding(obj, expected);
  const shape = obj.shape;
  checkShape(shape);
  const bbox = obj.bbox;
  const raw = base64ToBytes(obj.data);
  if (bbox === null || bbox === undefined) {
    if (raw.length) throw new Error("'data' must be empty when 'bbox' is null");
    return { shape, bbox: null, region: null };
  }
  if (!Array.isArray(bbox) || bbox.length !== 6 || !bbox.every(Number.isSafeInteger)) {
    throw new Error(`'bbox' must be null or 6 ints, got ${JSON.stringify(bbox)}`);
  }
  for (let a = 0; a < 3; a++) {
    if (!(bbox[a] >= 0 && bbox[a] < bbox[a + 3] && bbox[a + 3] <= shape[a])) {
      throw new Error(`'bbox' ${JSON.stringify(bbox)} is empty or outside shape ${JSON.stringify(shape)}`);
    }
  }
  const size = (bbox[3] - bbox[0]) * (bbox[4] - bbox[1]) * (bbox[5] - bbox[2]);
  return { shape, bbox, region: decodeRle(raw, size) };
}

/** Half-open bbox [z0,y0,x0,z1,y1,x1] of non-zero voxels, or null. */
export function bboxOf(data, shape) {
  const [Z, Y, X] = shape;
  let z0 = Z, y0 = Y, x0 = X, z1 = -1, y1 = -1, x1 = -1;
  for (let z = 0; z < Z; z++) {
    for (let y = 0; y < Y; y++) {
      const row = (z * Y + y) * X;
      let first = -1;
      for (let x = 0; x < X; x++) if (data[row + x]) { first = x; break; }
      if (first < 0) continue;
      let last = first;
      for (let x = X - 1; x > first; x--) if (data[row + x]) { last = x; break; }
      if (z < z0) z0 = z;
      z1 = z;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      if (first < x0) x0 = first;
      if (last > x1) x1 = last;
    }
  }
  return z1 < 0 ? null : [z0, y0, x0, z1 + 1, y1 + 1, x1 + 1];
}

function extractBox(data, shape, bbox) {
  const [, Y, X] = shape;
  const [z0, y0, x0, z1, y1, x1] = bbox;
  const w = x1 - x0;
  const out = new Uint8Array((z1 - z0) * (y1 - y0) * w);
  let k = 0;
  for (let z = z0; z < z1; z++) {
    for (let y = y0; y < y1; y++) {
      const row = (z * Y + y) * X + x0;
      for (let x = 0; x < w; x++) out[k++] = data[row + x] ? 1 : 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------- public API

/** Decode an "rle/1" message to {shape: [Z,Y,X], data: Uint8Array(Z*Y*X) of 0/1}. */
export function decodeMask(obj) {
  const { shape, bbox, region } = decodeBox(obj, ENCODING_MASK);
  const [Z, Y, X] = shape;
  const data = new Uint8Array(Z * Y * X);
  if (bbox) {
    const [z0, y0, x0, z1, y1, x1] = bbox;
    const w = x1 - x0;
    let k = 0;
    for (let z = z0; z < z1; z++) {
      for (let y = y0; y < y1; y++) {
        data.set(region.subarray(k, k + w), (z * Y + y) * X + x0);
        k += w;
      }
    }
  }
  return { shape: [Z, Y, X], data };
}

/**
 * Apply an "rle-xor/1" delta in place to `mask` (Uint8Array(Z*Y*X) of 0/1,
 * shape [Z,Y,X]); returns `mask`. Throws if shapes/encoding mismatch, the
 * payload is malformed or `changed_voxels` disagrees with the data (in which
 * case `mask` is left untouched).
 */
export function applyDelta(mask, shape, delta) {
  checkShape(shape);
  const { shape: dshape, bbox, region } = decodeBox(delta, ENCODING_DELTA);
  if (dshape[0] !== shape[0] || dshape[1] !== shape[1] || dshape[2] !== shape[2]) {
    throw new Error(`delta shape ${JSON.stringify(dshape)} does not match mask shape ${JSON.stringify(shape)}`);
  }
  if (mask.length !== shape[0] * shape[1] * shape[2]) {
    throw new Error(`mask length ${mask.length} does not match shape ${JSON.stringify(shape)}`);
  }
  if (delta.changed_voxels !== undefined && delta.changed_voxels !== null) {
    let count = 0;
    if (region) for (let i = 0; i < region.length; i++) count += region[i];
    if (delta.changed_voxels !== count) {
      throw new Error(`'changed_voxels' is ${delta.changed_voxels} but the data changes ${count} voxels`);
    }
  }
  if (!bbox) return mask;
  const [, Y, X] = shape;
  const [z0, y0, x0, z1, y1, x1] = bbox;
  const w = x1 - x0;
  let k = 0;
  for (let z = z0; z < z1; z++) {
    for (let y = y0; y < y1; y++) {
      const row = (z * Y + y) * X + x0;
      for (let x = 0; x < w; x++) mask[row + x] ^= region[k++];
    }
  }
  return mask;
}

/** Encode a full mask (Uint8Array/array of 0/1, C order) as an "rle/1" message. */
export function encodeMask(data, shape) {
  const vol = checkShape(shape);
  if (data.length !== vol) throw new Error(`mask length ${data.length} does not match shape`);
  const bbox = bboxOf(data, shape);
  return {
    encoding: ENCODING_MASK,
    shape: [shape[0], shape[1], shape[2]],
    bbox,
    data: bbox ? bytesToBase64(encodeRle(extractBox(data, shape, bbox))) : '',
  };
}

/**
 * Encode the change old -> new (same shape) as an "rle-xor/1" message.
 * options: {fromRevision, toRevision} (ints or null).
 */
export function encodeDelta(oldData, newData, shape, { fromRevision = null, toRevision = null } = {}) {
  const vol = checkShape(shape);
  if (oldData.length !== vol || newData.length !== vol) {
    throw new Error('old/new length does not match shape');
  }
  const xor = new Uint8Array(vol);
  for (let i = 0; i < vol; i++) xor[i] = (oldData[i] ? 1 : 0) ^ (newData[i] ? 1 : 0);
  const bbox = bboxOf(xor, shape);
  let changed = 0;
  let data = '';
  if (bbox) {
    const region = extractBox(xor, shape, bbox);
    for (let i = 0; i < region.length; i++) changed += region[i];
    data = bytesToBase64(encodeRle(region));
  }
  return {
    encoding: ENCODING_DELTA,
    shape: [shape[0], shape[1], shape[2]],
    bbox,
    from_revision: fromRevision,
    to_revision: toRevision,
    changed_voxels: changed,
    data,
  };
}
