// Image planes fetched on demand from GET /v1/sessions/{sid}/slices/{axis}/{index} and kept in
// a small LRU cache; concurrent requests for the same plane share one fetch.

const TYPED = {
  int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, float32: Float32Array, float64: Float64Array,
};

/** A plane: {axis, index, rows, cols, dtype, data: TypedArray(rows*cols)}, row-major. */
export class SliceCache {
  constructor(api, sessionId, capacity = 128) {
    this.api = api;
    this.sessionId = sessionId;
    this.capacity = capacity;
    this.planes = new Map(); // key -> plane (insertion order = recency)
    this.pending = new Map(); // key -> Promise<plane>
  }

  peek(axis, index) {
    const key = `${axis}/${index}`;
    const plane = this.planes.get(key);
    if (plane) { // refresh recency
      this.planes.delete(key);
      this.planes.set(key, plane);
    }
    return plane;
  }

  get(axis, index) {
    const cached = this.peek(axis, index);
    if (cached) return Promise.resolve(cached);
    const key = `${axis}/${index}`;
    if (!this.pending.has(key)) {
      const request = this.fetchPlane(axis, index).then((plane) => {
        this.planes.set(key, plane);
        while (this.planes.size > this.capacity) this.planes.delete(this.planes.keys().next().value);
        return plane;
      }).finally(() => this.pending.delete(key));
      this.pending.set(key, request);
    }
    return this.pending.get(key);
  }

  /** Warm the cache around `index` (errors are ignored: the plane is fetched again on use). */
  prefetch(axis, index, count, radius = 2) {
    for (let d = 1; d <= radius; d++) {
      for (const i of [index + d, index - d]) {
        if (i >= 0 && i < count) this.get(axis, i).catch(() => {});
      }
    }
  }

  async fetchPlane(axis, index) {
    const response = await this.api.fetch('GET', `/v1/sessions/${this.sessionId}/slices/${axis}/${index}`);
    const [rows, cols] = response.headers.get('X-Shape').split(',').map(Number);
    const dtype = response.headers.get('X-Dtype');
    const Typed = TYPED[dtype];
    if (!Typed) throw new Error(`unsupported slice dtype ${dtype}`);
    const data = new Typed(await response.arrayBuffer()); // little-endian, as every browser is
    if (data.length !== rows * cols) throw new Error(`slice has ${data.length} voxels, expected ${rows}x${cols}`);
    return { axis, index, rows, cols, dtype, data };
  }
}
