// Window/level: CT presets (HU), an automatic window from the data's percentiles (MR, PNG),
// and the grey lookup that turns a plane into pixels.

export const PRESETS = {
  abdomen: { width: 400, center: 50 },
  lung: { width: 1500, center: -600 },
  bone: { width: 1800, center: 400 },
  brain: { width: 80, center: 40 },
};

/** A window covering the 1st..99th percentile of the values (ignoring a constant image). */
export function autoWindow(data) {
  const step = Math.max(1, Math.floor(data.length / 65536));
  const sample = [];
  for (let i = 0; i < data.length; i += step) sample.push(data[i]);
  sample.sort((a, b) => a - b);
  const lo = sample[Math.floor(sample.length * 0.01)];
  const hi = sample[Math.min(sample.length - 1, Math.floor(sample.length * 0.99))];
  const width = Math.max(hi - lo, 1);
  return { width, center: lo + width / 2 };
}

/** True when the values look like Hounsfield units (CT without a modality tag). */
export function looksLikeCt(session, data) {
  if (session.modality === 'CT') return true;
  if (session.modality !== 'unknown' || !(data instanceof Int16Array)) return false;
  let min = 0;
  for (let i = 0; i < data.length; i += 7) if (data[i] < min) min = data[i];
  return min <= -900;
}

/**
 * Write the plane's grey values into `out` (Uint32Array of RGBA pixels, little-endian ABGR).
 * 8/16-bit planes go through a lookup table; others are mapped per pixel.
 */
export function renderGrey(plane, win, out) {
  const { data } = plane;
  const lo = win.center - win.width / 2;
  const grey = (v) => {
    const g = ((v - lo) * 255) / win.width;
    const b = g <= 0 ? 0 : g >= 255 ? 255 : g | 0;
    return 0xff000000 | (b << 16) | (b << 8) | b;
  };
  const offset = data instanceof Int16Array ? 32768 : data instanceof Int8Array ? 128 : 0;
  if (data instanceof Int16Array || data instanceof Uint16Array || data instanceof Uint8Array ||
      data instanceof Int8Array) {
    const lut = lutFor(data, win, offset, grey);
    for (let i = 0; i < data.length; i++) out[i] = lut[data[i] + offset];
  } else {
    for (let i = 0; i < data.length; i++) out[i] = grey(data[i]);
  }
}

let cached = { key: '', lut: null };

function lutFor(data, win, offset, grey) {
  const size = data instanceof Int16Array || data instanceof Uint16Array ? 65536 : 256;
  const key = `${size}/${offset}/${win.center}/${win.width}`;
  if (cached.key !== key) {
    const lut = new Uint32Array(size);
    for (let i = 0; i < size; i++) lut[i] = grey(i - offset);
    cached = { key, lut };
  }
  return cached.lut;
}
