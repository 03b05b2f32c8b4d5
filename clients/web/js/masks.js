// The viewer's copy of every segment's mask at a known revision. Deltas (rle-xor/1) are applied
// incrementally with the shipped decoder; a delta that does not start at the held revision,
// or that fails to decode, triggers a resync (delta from the held revision, else the full
// mask), so a stale mask is never shown. Emits 'change' {segmentId, bbox} with bbox the
// half-open [z0, y0, x0, z1, y1, x1] that changed (the whole volume on a full load).

import { applyDelta, decodeMask } from '../lib/maskcodec.js';

export class MaskStore extends EventTarget {
  constructor(api, session) {
    super();
    this.api = api;
    this.base = `/v1/sessions/${session.id}/segments`;
    this.shape = session.shape;
    this.masks = new Map(); // segment id -> {data: Uint8Array(Z*Y*X), revision}
  }

  get(segmentId) { return this.masks.get(segmentId); }
  revision(segmentId) { return this.masks.get(segmentId)?.revision ?? null; }
  forget(segmentId) {
    this.masks.delete(segmentId);
    this.emit(segmentId, this.fullBox());
  }

  fullBox() { return [0, 0, 0, ...this.shape]; }

  emit(segmentId, bbox) {
    this.dispatchEvent(new CustomEvent('change', { detail: { segmentId, bbox } }));
  }

  /** Replace the held mask by the server's full mask at its head revision. */
  async load(segmentId) {
    const body = await this.api.get(`${this.base}/${segmentId}/mask`);
    const { data } = decodeMask(body);
    this.masks.set(segmentId, { data, revision: body.revision });
    this.emit(segmentId, this.fullBox());
    return body.revision;
  }

  /**
   * Apply an answer's delta. Returns true when applied; false when it does not follow the held
   * revision (the caller then resyncs). A malformed delta throws and leaves the mask as it was.
   */
  apply(segmentId, delta) {
    const held = this.masks.get(segmentId);
    if (!held || held.revision !== delta.from_revision) return false;
    applyDelta(held.data, this.shape, delta);
    held.revision = delta.to_revision;
    if (delta.bbox) this.emit(segmentId, delta.bbox);
    else this.emit(segmentId, null); // same mask, new revision
    return true;
  }

  /** Bring the held mask to the server's head: one delta from the held revision, else full. */
  async resync(segmentId) {
    const held = this.masks.get(segmentId);
    if (held && held.revision !== null) {
      try {
        const delta = await this.api.get(`${this.base}/${segmentId}/delta?from=${held.revision}`);
        if (this.apply(segmentId, delta)) return held.revision;
      } catch (err) {
        if (err.status === 404 && err.code === 'segment_not_found') throw err;
        /* revision gone or malformed delta: fall back to the full mask */
      }
    }
    return this.load(segmentId);
  }

  /** Apply an answer's delta, or resync when it does not follow on. Returns the new revision. */
  async follow(segmentId, delta) {
    try {
      if (this.apply(segmentId, delta)) return delta.to_revision;
    } catch {
      /* malformed: resync below */
    }
    return this.resync(segmentId);
  }
}
