// The open session's state: the server's record of it, its image planes, every segment with its
// mask at a known revision (and how the viewer shows it), the active segment, its history, the
// jobs running on segments, and the calls that change them. No DOM here: panels and views
// follow it through the app's events: 'segments' (the list, the active one or a field
// changed), 'overlay' (a segment's look changed), 'history', 'job', 'status' {kind: 'revision'},
// 'stats' (volumes and slice ranges, recounted off the paint path shortly after masks change).

import { Editor } from './editor.js';
import { MaskStore } from './masks.js';
import { presetColor } from './presets.js';
import { SliceCache } from './slices.js';
import { SegmentStats } from './stats.js';


export class Session {
  constructor(app) {
    this.app = app;
    this.api = app.api;
    this.record = null; // SessionPublic of the open session
    this.slices = null;
    this.masks = null;
    this.editor = new Editor(app); // so that settled() answers before any session is open
    this.segments = []; // SegmentPublic + {opacity, visible} (viewer-only)
    this.activeSegmentId = null;
    this.creating = null; // the segment being created for a first edit, shared by concurrent edits
    this.history = null; // {segmentId, revisions} of the active segment, when loaded
    this.jobs = new Map(); // segment id -> running job
    this.stats = null; // SegmentStats of the held masks
    this.statsDue = new Map(); // segment id -> bbox to recount (null: the whole mask)
    this.statsTimer = 0;
  }

  emit(type, detail) { this.app.emit(type, detail); }

  get base() { return `/v1/sessions/${this.record.id}/segments`; }

  list() { return this.api.get('/v1/sessions'); }
  fetch(id) { return this.api.get(`/v1/sessions/${id}`); }
  upload(files, onProgress) { return this.api.upload('/v1/sessions', files, onProgress); }

  /**
   * Hold `record` as the open session, with no segments yet (addSegment them once the views
   * show it). A fresh editor, so changes still in flight for the last session touch nothing.
   */
  open(record) {
    this.record = record;
    this.slices = new SliceCache(this.api, record.id);
    this.masks = new MaskStore(this.api, record);
    this.editor = new Editor(this.app, record, this.masks);
    this.segments = [];
    this.activeSegmentId = null;
    this.stats = new SegmentStats(record.shape, record.spacing ?? [1, 1, 1]);
    this.statsDue.clear();
    const masks = this.masks;
    masks.addEventListener('change', (e) => {
      if (this.masks === masks && e.detail.bbox) this.recount(e.detail.segmentId, e.detail.bbox);
    });
  }

  /** Recount the statistics of segment `id` in `bbox` soon (merged with other changes). */
  recount(id, bbox) {
    const due = this.statsDue.get(id);
    this.statsDue.set(id, due === undefined ? [...bbox] : [
      Math.min(due[0], bbox[0]), Math.min(due[1], bbox[1]), Math.min(due[2], bbox[2]),
      Math.max(due[3], bbox[3]), Math.max(due[4], bbox[4]), Math.max(due[5], bbox[5])]);
    if (!this.statsTimer) this.statsTimer = setTimeout(() => this.flushStats(), 60);
  }

  /** Bring the statistics up to date now (also what tests wait on). */
  flushStats() {
    clearTimeout(this.statsTimer);
    this.statsTimer = 0;
    if (!this.stats) return;
    for (const [id, bbox] of this.statsDue) {
      const mask = this.masks.get(id);
      if (mask) this.stats.update(id, mask.data, bbox);
      else this.stats.forget(id);
    }
    this.statsDue.clear();
    this.emit('stats');
  }

  /** {voxels, ml, range} of segment `id` from the held mask, or null before it is loaded. */
  segmentStats(id) { return this.stats?.get(id) ?? null; }

  get activeSegment() { return this.segment(this.activeSegmentId); }

  segment(id) { return this.segments.find((s) => s.id === id) ?? null; }

  async addSegment(segment) {
    if (this.segment(segment.id)) return this.mergeSegment(segment);
    this.segments.push({ opacity: 0.5, visible: true, ...segment });
    this.segments.sort((a, b) => a.id - b.id);
    await this.editor.enqueue(segment.id, () => this.masks.load(segment.id));
    this.emit('segments');
  }

  async createSegment(name) {
    // an organ preset's colour, else the server's default: a palette, then colours that never
    // repeat (a palette of 10 here repeated from the 11th segment on)
    const color = presetColor(name);
    const body = color ? { color } : {};
    if (name) body.name = name;
    const segment = await this.api.post(this.base, body);
    await this.addSegment(segment);
    this.setActiveSegment(segment.id);
    return segment;
  }

  /** The active segment's id, creating one on the first edit of a session. */
  async ensureSegment() {
    if (this.activeSegmentId === null) {
      if (!this.creating) this.creating = this.createSegment().finally(() => { this.creating = null; });
      await this.creating;
    }
    return this.activeSegmentId;
  }

  setActiveSegment(id) {
    this.activeSegmentId = id;
    this.emit('segments');
  }

  async updateSegment(id, patch) {
    this.mergeSegment(await this.api.patch(`${this.base}/${id}`, patch));
    this.emit('overlay');
  }

  /** Viewer-only look of a segment: {opacity, visible}. */
  styleSegment(id, style) {
    Object.assign(this.segment(id) ?? {}, style);
    this.emit('segments');
    this.emit('overlay');
  }

  async deleteSegment(id) {
    await this.api.delete(`${this.base}/${id}`);
    this.segments = this.segments.filter((s) => s.id !== id);
    if (this.activeSegmentId === id) this.activeSegmentId = this.segments[0]?.id ?? null;
    this.masks.forget(id);
    this.emit('segments');
  }

  /** Mirror a lock the server set by itself (every 2D interaction locks its slice). */
  markLocked(id, axis, index) {
    const held = this.segment(id);
    if (!held) return;
    const slices = held.locked_slices ?? {};
    if (!slices[axis]?.includes(index)) {
      held.locked_slices = { ...slices, [axis]: [...(slices[axis] ?? []), index].sort((a, b) => a - b) };
    }
  }

  mergeSegment(segment) {
    const held = this.segment(segment.id);
    if (held) Object.assign(held, segment);
    this.emit('segments');
  }

  /** An answer to a change was applied to the mask. */
  segmentChanged(id, result) {
    const held = this.segment(id);
    if (held) Object.assign(held, { revision: this.masks.revision(id), can_undo: result.can_undo, can_redo: result.can_redo });
    this.emit('segments');
    this.emit('status', { kind: 'revision', revision: this.masks.revision(id), timings: result.timings_ms });
  }

  async refreshSegment(id) {
    this.mergeSegment(await this.api.get(`${this.base}/${id}`));
  }

  /** Catch up with changes made elsewhere (another tab, a script): segments and masks. */
  async refreshAll() {
    if (!this.record) return;
    const listed = await this.api.get(this.base);
    const ids = new Set(listed.map((s) => s.id));
    for (const gone of this.segments.filter((s) => !ids.has(s.id))) {
      this.masks.forget(gone.id);
    }
    this.segments = this.segments.filter((s) => ids.has(s.id));
    for (const segment of listed) {
      if (!this.segment(segment.id)) await this.addSegment(segment);
      else {
        if (this.masks.revision(segment.id) !== segment.revision) {
          // in the segment's queue, so it never interleaves with a change being applied
          await this.editor.enqueue(segment.id, () => this.masks.resync(segment.id));
        }
        this.mergeSegment(segment);
      }
    }
    if (!ids.has(this.activeSegmentId)) this.activeSegmentId = this.segments[0]?.id ?? null;
    this.emit('segments');
  }

  undo() { return this.editor.undo(); }
  redo() { return this.editor.redo(); }

  /** What made each revision of segment `id` (GET .../history), kept for the active segment. */
  async loadHistory(id) {
    const { revisions } = await this.api.get(`${this.base}/${id}/history`);
    this.history = { segmentId: id, revisions };
    this.emit('history');
    return this.history;
  }

  /** Keep `run` (a segment job's promise) as the segment's running job until it settles. */
  async trackJob(id, run) {
    this.jobs.set(id, run);
    this.emit('job', { job: null, segmentId: id });
    try {
      return await run;
    } finally {
      this.jobs.delete(id);
      this.emit('job', { job: null, segmentId: id });
    }
  }

  /** Visible masks in drawing order (later segments win, as in the label-map export). */
  overlayLayers() {
    const layers = [];
    for (const s of this.segments) {
      const mask = this.masks?.get(s.id);
      if (!s.visible || !mask) continue;
      const r = parseInt(s.color.slice(1, 3), 16);
      const g = parseInt(s.color.slice(3, 5), 16);
      const b = parseInt(s.color.slice(5, 7), 16);
      const a = Math.round(255 * s.opacity);
      layers.push({ data: mask.data, rgba: ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 });
    }
    return layers;
  }

  /** The label map as the server writes it: {name (its file name), blob}. */
  async exportLabels(format = 'nifti') {
    const response = await this.api.fetch('GET', `/v1/sessions/${this.record.id}/export?format=${format}`);
    const name = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') ?? '')?.[1] ?? 'labels';
    return { name, blob: await response.blob() };
  }
}
