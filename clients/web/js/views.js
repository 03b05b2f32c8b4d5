// The three slice views together: which one is main, which one keys act on, the crosshair,
// one view or three, the grey window they share, and moves that concern every view.

import { SliceView } from './view.js';
import { PRESETS, autoWindow, looksLikeCt } from './windowing.js';

export class Views {
  constructor(app, element) {
    this.app = app;
    this.el = element;
    this.window = { ...PRESETS.abdomen };
    this.windowName = 'abdomen';
    this.crosshair = true; // lines where the other views cut this one
    this.keys = new Set(); // keys held down: Space + drag pans
    this.hovered = null;
    this.decorations = []; // (ctx, view) => draw marks that belong to no tool
    this.byAxis = {};
    for (const axis of ['z', 'y', 'x']) {
      const el = document.createElement('div');
      el.className = 'view';
      el.dataset.axis = axis;
      element.append(el);
      this.byAxis[axis] = new SliceView(app, axis, el);
    }
    this.all = Object.values(this.byAxis);
    this.setMain('z');
  }

  /** Show a newly opened session, in a window that suits its middle slice. */
  async open(record, slices) {
    const middle = await slices.get('z', Math.floor(record.shape[0] / 2));
    this.isCt = looksLikeCt(record, middle.data); // values in HU (the threshold tool says so)
    if (this.isCt) this.setWindow(PRESETS.abdomen, 'abdomen');
    else this.setWindow(autoWindow(middle.data), 'auto');
    for (const view of this.all) view.setSession(record);
    this.setMain(record.shape[0] === 1 ? 'z' : this.mainAxis);
    this.el.classList.toggle('flat', record.shape[0] === 1);
  }

  get main() { return this.byAxis[this.mainAxis]; }

  /** The view that keys act on: the one under the mouse, else the main one. */
  get focus() { return this.hovered ?? this.main; }

  setMain(axis) {
    this.mainAxis = axis;
    for (const view of this.all) view.el.classList.toggle('main', view.axis === axis);
    this.requestDraw();
  }

  toggleCrosshair() {
    this.crosshair = !this.crosshair;
    this.requestDraw();
  }

  toggleSingle() { this.el.classList.toggle('single'); }

  others(view) { return this.all.filter((v) => v !== view); }

  moved(view) {
    for (const other of this.others(view)) other.requestDraw();
    this.app.emit('status', { kind: 'slice', view });
  }

  goTo(zyx, from) {
    for (const view of this.others(from)) view.setIndex(zyx[{ z: 0, y: 1, x: 2 }[view.axis]]);
  }

  cursor(view, hit) {
    if (!hit || !view.shown) return this.app.emit('status', { kind: 'cursor', hit: null });
    this.app.emit('status', { kind: 'cursor', hit, value: view.shown.data[hit.row * view.cols + hit.col] });
  }

  setWindow(win, name) {
    this.window = { width: Math.max(1, win.width), center: win.center };
    this.windowName = name;
    for (const view of this.all) view.paintImage();
    this.app.emit('window');
  }

  autoWindow() {
    if (this.main.shown) this.setWindow(autoWindow(this.main.shown.data), 'auto');
  }

  maskChanged(bbox) {
    for (const view of this.all) view.maskChanged(bbox);
  }

  repaintOverlays() {
    for (const view of this.all) view.paintOverlay();
  }

  requestDraw() {
    for (const view of this.all) view.requestDraw();
  }

  /** Padlocks in the titles, for the active segment. */
  updateLocks() {
    for (const view of this.all) view.updateLock();
  }
}
