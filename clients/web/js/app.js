// The viewer's state and the glue between its parts: the API, the open session, its image
// planes and segment masks, the three views, the active tool, method and window.
// UI modules listen to the events it emits: 'session', 'segments', 'tool', 'window',
// 'status' {kind, ...}, 'message' {level, title, detail}.

import { Api } from './api.js';
import { Editor } from './editor.js';
import { MaskStore } from './masks.js';
import { describe } from './messages.js';
import { SliceCache } from './slices.js';
import { allTools } from './tools/index.js';
import { SliceView } from './view.js';
import { PRESETS, autoWindow, looksLikeCt } from './windowing.js';

const PALETTE = ['#e6194b', '#3cb44b', '#ffe119', '#4363d8', '#f58231', '#911eb4', '#42d4f4',
  '#f032e6', '#bfef45', '#fabed4'];

export class App extends EventTarget {
  constructor(viewsElement) {
    super();
    this.api = new Api();
    this.caps = null;
    this.models = null; // /v1/models when the server has it
    this.session = null;
    this.slices = null;
    this.masks = null;
    this.segments = []; // SegmentPublic + {opacity, visible} (viewer-only)
    this.activeSegmentId = null;
    this.tool = null;
    this.dim = '2d';
    this.preferredMethod = {}; // interaction type -> method name picked by the user
    this.methodParams = {}; // method name -> {param: value} overrides of its defaults
    this.window = { ...PRESETS.abdomen };
    this.windowName = 'abdomen';
    this.crosshair = true; // lines where the other views cut this one
    this.keys = new Set();
    this.hovered = null;
    this.pending = null; // {t0, label, applied}: a change waiting to be painted
    this.latencies = [];
    this.messages = []; // every message shown, for tests and the console
    this.editor = new Editor(this);
    this.viewsElement = viewsElement;
    this.views = {};
    for (const axis of ['z', 'y', 'x']) {
      const el = document.createElement('div');
      el.className = 'view';
      el.dataset.axis = axis;
      viewsElement.append(el);
      this.views[axis] = new SliceView(this, axis, el);
    }
    this.setMainView('z');
    this.api.addEventListener('response', (e) => this.emit('status', { kind: 'server', ...e.detail }));
  }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  // -- start-up -----------------------------------------------------------------------------
  /** Capabilities (and models when offered); false when an API key is needed first. */
  async connect() {
    try {
      this.caps = await this.api.get('/v1/capabilities');
    } catch (err) {
      this.report(err);
      return false;
    }
    try {
      this.models = await this.api.get('/v1/models');
    } catch {
      this.models = null; // optional endpoint
    }
    const offered = new Set(this.caps.interaction_types);
    this.tools = allTools().filter((t) => offered.has(t.type));
    this.setTool(this.tools[0] ?? null);
    this.emit('capabilities');
    return true;
  }

  async listSessions() { return this.api.get('/v1/sessions'); }

  async upload(files, onProgress) {
    const session = await this.api.upload('/v1/sessions', files, onProgress);
    await this.openSession(session);
    return session;
  }

  async openSessionById(id) {
    await this.openSession(await this.api.get(`/v1/sessions/${id}`));
  }

  async openSession(session) {
    this.session = session;
    this.slices = new SliceCache(this.api, session.id);
    this.masks = new MaskStore(this.api, session);
    this.editor = new Editor(this, session, this.masks);
    this.masks.addEventListener('change', (e) => {
      for (const view of Object.values(this.views)) view.maskChanged(e.detail.bbox);
    });
    this.segments = [];
    this.activeSegmentId = null;
    history.replaceState(null, '', `#session=${session.id}`);
    const middle = await this.slices.get('z', Math.floor(session.shape[0] / 2));
    if (looksLikeCt(session, middle.data)) this.setWindow(PRESETS.abdomen, 'abdomen');
    else this.setWindow(autoWindow(middle.data), 'auto');
    for (const view of Object.values(this.views)) view.setSession(session);
    this.setMainView(session.shape[0] === 1 ? 'z' : this.mainAxis);
    this.viewsElement.classList.toggle('flat', session.shape[0] === 1);
    this.emit('session');
    await Promise.all(session.segments.map((s) => this.addSegment(s)));
    if (this.segments.length) this.setActiveSegment(this.segments[0].id);
  }

  // -- methods ------------------------------------------------------------------------------
  methodsFor(type, dim = this.dim) {
    return (this.caps?.methods ?? []).filter((m) => m.interaction_types.includes(type) && m.dims.includes(dim));
  }

  methodFor(type) {
    const methods = this.methodsFor(type);
    const pick = (name) => methods.find((m) => m.name === name);
    return pick(this.preferredMethod[type]) ?? pick(this.caps.default_method) ?? methods[0] ?? null;
  }

  setTool(tool) {
    this.tool = tool;
    this.emit('tool');
  }

  setDim(dim) {
    this.dim = dim;
    this.emit('tool');
  }

  // -- segments -----------------------------------------------------------------------------
  get activeSegment() { return this.segments.find((s) => s.id === this.activeSegmentId) ?? null; }

  async addSegment(segment) {
    if (this.segments.some((s) => s.id === segment.id)) return this.mergeSegment(segment);
    this.segments.push({ opacity: 0.5, visible: true, ...segment });
    this.segments.sort((a, b) => a.id - b.id);
    await this.editor.enqueue(segment.id, () => this.masks.load(segment.id));
    this.emit('segments');
  }

  async createSegment(name) {
    const color = PALETTE[this.segments.length % PALETTE.length];
    const body = { color };
    if (name) body.name = name;
    const segment = await this.api.post(`/v1/sessions/${this.session.id}/segments`, body);
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
    const segment = await this.api.patch(`/v1/sessions/${this.session.id}/segments/${id}`, patch);
    this.mergeSegment(segment);
    this.repaintOverlays();
  }

  /** Viewer-only look of a segment: {opacity, visible}. */
  styleSegment(id, style) {
    Object.assign(this.segments.find((s) => s.id === id) ?? {}, style);
    this.emit('segments');
    this.repaintOverlays();
  }

  async deleteSegment(id) {
    await this.api.delete(`/v1/sessions/${this.session.id}/segments/${id}`);
    this.segments = this.segments.filter((s) => s.id !== id);
    if (this.activeSegmentId === id) this.activeSegmentId = this.segments[0]?.id ?? null;
    this.masks.forget(id);
    this.emit('segments');
  }

  mergeSegment(segment) {
    const held = this.segments.find((s) => s.id === segment.id);
    if (held) Object.assign(held, segment);
    this.emit('segments');
  }

  /** An answer to a change was applied to the mask. */
  segmentChanged(id, result) {
    const held = this.segments.find((s) => s.id === id);
    if (held) Object.assign(held, { revision: this.masks.revision(id), can_undo: result.can_undo, can_redo: result.can_redo });
    if (this.pending) this.pending.applied = true;
    this.emit('segments');
    this.emit('status', { kind: 'revision', revision: this.masks.revision(id), timings: result.timings_ms });
    for (const view of Object.values(this.views)) view.requestDraw();
  }

  async refreshSegment(id) {
    this.mergeSegment(await this.api.get(`/v1/sessions/${this.session.id}/segments/${id}`));
  }

  /** Catch up with changes made elsewhere (another tab, a script): segments and masks. */
  async refreshAll() {
    if (!this.session) return;
    const listed = await this.api.get(`/v1/sessions/${this.session.id}/segments`);
    const ids = new Set(listed.map((s) => s.id));
    for (const gone of this.segments.filter((s) => !ids.has(s.id))) {
      this.masks.forget(gone.id);
    }
    this.segments = this.segments.filter((s) => ids.has(s.id));
    for (const segment of listed) {
      if (!this.segments.some((s) => s.id === segment.id)) await this.addSegment(segment);
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

  repaintOverlays() {
    for (const view of Object.values(this.views)) view.paintOverlay();
  }

  // -- window / views -----------------------------------------------------------------------
  setWindow(win, name) {
    this.window = { width: Math.max(1, win.width), center: win.center };
    this.windowName = name;
    for (const view of Object.values(this.views)) view.paintImage();
    this.emit('window');
  }

  autoWindow() {
    const view = this.mainView;
    if (view.shown) this.setWindow(autoWindow(view.shown.data), 'auto');
  }

  get mainView() { return this.views[this.mainAxis]; }

  /** The view that keys act on: the one under the mouse, else the main one. */
  get focusView() { return this.hovered ?? this.mainView; }

  setMainView(axis) {
    this.mainAxis = axis;
    for (const view of Object.values(this.views)) view.el.classList.toggle('main', view.axis === axis);
    for (const view of Object.values(this.views)) view.requestDraw();
  }

  toggleCrosshair() {
    this.crosshair = !this.crosshair;
    for (const view of Object.values(this.views)) view.requestDraw();
  }

  toggleSingle() {
    this.viewsElement.classList.toggle('single');
  }

  otherViews(view) { return Object.values(this.views).filter((v) => v !== view); }

  viewsMoved(view) {
    for (const other of this.otherViews(view)) other.requestDraw();
    this.emit('status', { kind: 'slice', view });
  }

  goTo(zyx, from) {
    for (const view of this.otherViews(from)) view.setIndex(zyx[{ z: 0, y: 1, x: 2 }[view.axis]]);
  }

  cursor(view, hit) {
    if (!hit || !view.shown) return this.emit('status', { kind: 'cursor', hit: null });
    this.emit('status', { kind: 'cursor', hit, value: view.shown.data[hit.row * view.cols + hit.col] });
  }

  // -- click-to-paint latency ---------------------------------------------------------------
  expectPaint(t0, label) { this.pending = { t0, label, applied: false, answeredAt: performance.now() }; }
  cancelPaint() { this.pending = null; }

  painted() {
    const p = this.pending;
    if (!p?.applied) return;
    this.pending = null;
    const end = performance.now();
    performance.measure('medseg:change-to-paint', { start: p.t0, end, detail: { label: p.label } });
    // where the time went: until the answer arrived, decoding + applying the delta, painting
    this.latencies.push({ label: p.label, ms: end - p.t0, answer: p.answeredAt - p.t0,
      apply: p.appliedAt - p.answeredAt, paint: end - p.appliedAt });
    this.emit('status', { kind: 'paint', ms: end - p.t0 });
  }

  slicePainted(view, ms) {
    this.latencies.push({ label: `slice ${view.axis}`, ms });
  }

  // -- messages -----------------------------------------------------------------------------
  report(err) {
    console.error(err);
    const { title, detail } = describe(err);
    this.messages.push({ level: 'error', title, detail });
    this.emit('message', { level: 'error', title, detail, status: err.status, code: err.code });
    if (err.status === 401) this.emit('need-key');
  }

  notify(text) { this.emit('message', { level: 'info', title: text, detail: '' }); }

  async exportLabels(format = 'nifti') {
    const response = await this.api.fetch('GET', `/v1/sessions/${this.session.id}/export?format=${format}`);
    const name = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') ?? '')?.[1] ?? 'labels';
    const url = URL.createObjectURL(await response.blob());
    const a = Object.assign(document.createElement('a'), { href: url, download: name });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
