// One slice view: the grey plane and the segment overlay drawn through one matrix (orientation,
// pixel spacing, zoom, pan), mouse input for tools / pan / zoom / window-level, and partial
// repaints of the overlay when a mask delta touches the shown plane.

import { pixelOf, viewLayout, voxelOf } from './orientation.js';
import { LOCK_ICON, isLocked, toggleLock } from './propagation.js';
import { renderGrey } from './windowing.js';

const AXIS_INDEX = { z: 0, y: 1, x: 2 };

export class SliceView {
  constructor(app, axis, element) {
    this.app = app;
    this.axis = axis;
    this.el = element;
    element.innerHTML = `<div class="view-title"><button class="plane" title="make this the main view"></button>
      <span class="pos"></span><button class="lock" hidden title="this slice is locked for the active segment: propagation leaves it as it is. Click to unlock (L)">${LOCK_ICON} locked <span class="unlock">unlock</span></button></div>
      <canvas></canvas><div class="lock-marks" aria-label="locked slices"></div>
      <input type="range" class="slider" min="0" value="0" aria-label="slice">`;
    this.canvas = element.querySelector('canvas');
    this.ctx = this.canvas.getContext('2d');
    this.slider = element.querySelector('.slider');
    this.image = makeCanvas(1, 1); // grey plane, one pixel per voxel (cols x rows)
    this.overlay = makeCanvas(1, 1); // segment colours, same grid
    this.index = 0; // wanted slice
    this.shown = null; // plane on screen (its index may lag `index` while fetching)
    this.zoom = 1;
    this.pan = [0, 0];
    this.drag = null; // {kind: 'tool'|'pan'|'window', ...}
    this.frame = 0;
    this.bind();
  }

  // -- geometry ---------------------------------------------------------------------------
  setSession(session) {
    this.layout = viewLayout(session, this.axis);
    const a = AXIS_INDEX;
    this.rows = session.shape[a[this.layout.rowAxis]];
    this.cols = session.shape[a[this.layout.colAxis]];
    this.count = session.shape[a[this.axis]];
    this.strides = planeStrides(session.shape, this.axis);
    this.el.querySelector('.plane').textContent = this.layout.plane;
    this.slider.max = String(this.count - 1);
    this.image = makeCanvas(this.cols, this.rows);
    this.overlay = makeCanvas(this.cols, this.rows);
    this.greyPixels = new ImageData(this.cols, this.rows);
    this.overlayPixels = new ImageData(this.cols, this.rows);
    this.shown = null;
    this.resetView();
    this.setIndex(Math.floor(this.count / 2), true);
  }

  resetView() {
    this.zoom = 1;
    this.pan = [0, 0];
    this.requestDraw();
  }

  /** plane pixel (col, row) -> screen (CSS px). */
  matrix() {
    const { transpose, flipX, flipY, sx, sy } = this.layout;
    const fx = flipX ? -sx : sx;
    const fy = flipY ? -sy : sy;
    const across = transpose ? this.rows : this.cols;
    const down = transpose ? this.cols : this.rows;
    const width = this.canvas.clientWidth || 1;
    const height = this.canvas.clientHeight || 1;
    const fit = 0.96 * Math.min(width / (across * sx), height / (down * sy));
    const orient = transpose
      ? new DOMMatrix([0, fy, fx, 0, -fx * this.rows / 2, -fy * this.cols / 2])
      : new DOMMatrix([fx, 0, 0, fy, -fx * this.cols / 2, -fy * this.rows / 2]);
    return new DOMMatrix()
      .translate(width / 2 + this.pan[0], height / 2 + this.pan[1])
      .scale(fit * this.zoom)
      .multiply(orient);
  }

  /** [row, col] (fractional) under screen point (CSS px relative to the canvas). */
  toPlane(x, y) {
    const p = this.matrix().inverse().transformPoint(new DOMPoint(x, y));
    return [p.y, p.x];
  }

  /** screen point (CSS px) of the centre of plane pixel (row, col). */
  toScreen(row, col) {
    const p = this.matrix().transformPoint(new DOMPoint(col + 0.5, row + 0.5));
    return [p.x, p.y];
  }

  voxelAt(x, y) {
    const [r, c] = this.toPlane(x, y);
    const row = Math.floor(r);
    const col = Math.floor(c);
    if (row < 0 || col < 0 || row >= this.rows || col >= this.cols) return null;
    return { row, col, zyx: voxelOf(this.axis, this.index, row, col) };
  }

  // -- slice ------------------------------------------------------------------------------
  setIndex(index, force = false) {
    if (!this.layout) return;
    index = Math.max(0, Math.min(this.count - 1, Math.round(index)));
    if (index === this.index && this.shown?.index === index && !force) return;
    this.index = index;
    this.sliceAsked = performance.now(); // for the slice-to-paint measure
    this.slider.value = String(index);
    this.el.querySelector('.pos').textContent = `${this.axis} ${index + 1}/${this.count}`;
    this.updateLock();
    const slices = this.app.session.slices;
    const ready = slices.peek(this.axis, index);
    if (ready) this.show(ready);
    else {
      slices.get(this.axis, index).then((plane) => {
        if (plane.index === this.index && this.app.session.slices === slices) this.show(plane);
      }).catch((err) => this.app.report(err));
    }
    slices.prefetch(this.axis, index, this.count);
    this.app.views.moved(this);
  }

  show(plane) {
    this.shown = plane;
    this.paintImage();
    this.paintOverlay();
  }

  // -- painting ---------------------------------------------------------------------------
  paintImage() {
    if (!this.shown) return;
    renderGrey(this.shown, this.app.views.window, new Uint32Array(this.greyPixels.data.buffer));
    this.image.getContext('2d').putImageData(this.greyPixels, 0, 0);
    this.requestDraw();
  }

  /** Recompute overlay pixels in rows [r0, r1) x cols [c0, c1) of the shown plane. */
  paintOverlay(r0 = 0, c0 = 0, r1 = this.rows, c1 = this.cols) {
    if (!this.shown) return;
    const layers = this.app.session.overlayLayers(); // [{data, rgba}] in drawing order, later wins
    const out = new Uint32Array(this.overlayPixels.data.buffer);
    const [base, rowStride, colStride] = this.strides(this.shown.index);
    for (let r = r0; r < r1; r++) {
      const rowBase = base + r * rowStride;
      let o = r * this.cols + c0;
      for (let c = c0; c < c1; c++, o++) {
        const v = rowBase + c * colStride;
        let px = 0;
        for (let k = 0; k < layers.length; k++) if (layers[k].data[v]) px = layers[k].rgba;
        out[o] = px;
      }
    }
    this.overlay.getContext('2d').putImageData(this.overlayPixels, 0, 0, c0, r0, c1 - c0, r1 - r0);
    this.requestDraw();
  }

  /** A mask changed in the half-open box [z0, y0, x0, z1, y1, x1]: repaint what is shown. */
  maskChanged(bbox) {
    if (!this.shown || !bbox) return false;
    const a = AXIS_INDEX[this.axis];
    const i = this.shown.index;
    if (i < bbox[a] || i >= bbox[a + 3]) return false;
    const ra = AXIS_INDEX[this.layout.rowAxis];
    const ca = AXIS_INDEX[this.layout.colAxis];
    this.paintOverlay(bbox[ra], bbox[ca], bbox[ra + 3], bbox[ca + 3]);
    return true;
  }

  requestDraw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = 0;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * dpr);
    const h = Math.round(this.canvas.clientHeight * dpr);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, w, h);
    if (!this.shown) return;
    const m = new DOMMatrix().scale(dpr).multiply(this.matrix());
    ctx.setTransform(m);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.image, 0, 0);
    ctx.drawImage(this.overlay, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.app.views.crosshair) this.drawCrosshair(ctx);
    this.app.tools.active?.decorate?.(ctx, this); // the tool's own marks (placed points)
    for (const decorate of this.app.views.decorations) decorate(ctx, this); // e.g. fine-tuning scribbles
    const tool = this.drag?.kind === 'tool' ? this.drag.tool : null;
    if (tool?.preview) tool.preview(ctx, this.drag.gesture, this);
    this.app.clock.painted();
    if (this.sliceAsked && this.shown.index === this.index) {
      this.app.clock.slicePainted(this, performance.now() - this.sliceAsked);
      this.sliceAsked = 0;
    }
  }

  drawCrosshair(ctx) {
    ctx.save();
    ctx.strokeStyle = 'rgba(255, 214, 0, 0.35)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const other of this.app.views.others(this)) {
      if (other.axis === this.layout.rowAxis) line(ctx, this, other.index, 0, other.index, this.cols - 1, 'row');
      if (other.axis === this.layout.colAxis) line(ctx, this, 0, other.index, this.rows - 1, other.index, 'col');
    }
    ctx.stroke();
    ctx.restore();
  }

  // -- input ------------------------------------------------------------------------------
  bind() {
    const c = this.canvas;
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('pointerdown', (e) => this.pointerDown(e));
    c.addEventListener('pointermove', (e) => this.pointerMove(e));
    c.addEventListener('pointerup', (e) => this.pointerUp(e));
    c.addEventListener('pointercancel', () => { this.drag = null; this.requestDraw(); });
    c.addEventListener('pointerenter', () => { this.app.views.hovered = this; });
    c.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
    this.slider.addEventListener('input', () => this.setIndex(Number(this.slider.value)));
    this.el.querySelector('.plane').addEventListener('click', () => this.app.views.setMain(this.axis));
    this.el.querySelector('.lock').addEventListener('click', () => toggleLock(this.app, this));
    new ResizeObserver(() => this.requestDraw()).observe(c);
  }

  pointerDown(e) {
    if (!this.shown) return;
    const { offsetX: x, offsetY: y } = e;
    const { views } = this.app;
    views.hovered = this;
    if (e.button === 1 || (e.button === 0 && (e.ctrlKey || e.metaKey || views.keys.has(' ')))) {
      this.drag = { kind: 'pan', x, y, pan: [...this.pan] };
    } else if (e.button === 0 && e.altKey) {
      this.drag = { kind: 'window', x, y, win: { ...views.window } };
    } else if (e.button === 0 && e.shiftKey) {
      const hit = this.voxelAt(x, y);
      if (hit) views.goTo(hit.zyx, this);
      return;
    } else if (e.button === 0 || e.button === 2) {
      const hit = this.voxelAt(x, y);
      const tool = this.app.tools.active;
      if (!hit && tool) {
        this.app.notify('That click was outside the image: nothing was sent. Click on the image itself.');
        return;
      }
      if (!hit || !tool) return;
      const gesture = tool.begin({ view: this, ...hit, foreground: e.button === 0, event: e });
      if (!gesture) return;
      this.drag = { kind: 'tool', tool, gesture };
    } else {
      return;
    }
    this.canvas.setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  pointerMove(e) {
    const { offsetX: x, offsetY: y } = e;
    const hit = this.voxelAt(x, y);
    this.app.views.cursor(this, hit);
    const d = this.drag;
    if (!d) return;
    if (d.kind === 'pan') {
      this.pan = [d.pan[0] + x - d.x, d.pan[1] + y - d.y];
    } else if (d.kind === 'window') {
      const width = Math.max(1, d.win.width * Math.exp((x - d.x) / 200));
      this.app.views.setWindow({ width, center: d.win.center - (y - d.y) * d.win.width / 400 }, 'custom');
    } else if (d.kind === 'tool' && d.tool.extend) {
      const [r, c] = this.toPlane(x, y);
      const row = Math.max(0, Math.min(this.rows - 1, Math.floor(r)));
      const col = Math.max(0, Math.min(this.cols - 1, Math.floor(c)));
      d.tool.extend(d.gesture, { row, col, zyx: voxelOf(this.axis, this.index, row, col) });
    }
    this.requestDraw();
  }

  pointerUp(e) {
    const d = this.drag;
    this.drag = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    // a gesture goes to the server, unless a panel collects gestures (fine-tuning scribbles)
    if (d?.kind === 'tool' && !this.app.tools.capture?.(d.tool, d.gesture, this)) {
      this.app.session.editor.submitGesture(d.tool, d.gesture, this);
    }
    this.requestDraw();
  }

  wheel(e) {
    e.preventDefault();
    if (e.ctrlKey || e.metaKey) {
      this.zoomBy(Math.exp(-e.deltaY / 300), e.offsetX, e.offsetY);
    } else {
      this.setIndex(this.index + Math.sign(e.deltaY));
    }
  }

  /** Zoom by `factor` keeping the screen point (x, y) fixed (default: the centre). */
  zoomBy(factor, x = this.canvas.clientWidth / 2, y = this.canvas.clientHeight / 2) {
    const zoom = Math.max(0.2, Math.min(40, this.zoom * factor));
    const k = zoom / this.zoom;
    const cx = this.canvas.clientWidth / 2 + this.pan[0];
    const cy = this.canvas.clientHeight / 2 + this.pan[1];
    this.pan = [this.pan[0] + (x - cx) * (1 - k), this.pan[1] + (y - cy) * (1 - k)];
    this.zoom = zoom;
    this.requestDraw();
  }

  /**
   * Is the shown slice locked for the active segment? Shows the lock in the title (a button:
   * one click unlocks), and a mark along the slider for every locked slice on this axis.
   */
  updateLock() {
    const segment = this.app.session.activeSegment;
    const locked = isLocked(segment, this.axis, this.index);
    this.el.querySelector('.lock').hidden = !locked;
    const slices = this.layout ? segment?.locked_slices?.[this.axis] ?? [] : [];
    const key = `${this.count}:${slices.join(',')}:${this.index}`;
    if (key !== this.lockKey) {
      this.lockKey = key;
      this.el.querySelector('.lock-marks').replaceChildren(...slices.map((index) => {
        const mark = document.createElement('button');
        mark.className = 'lock-mark';
        mark.classList.toggle('here', index === this.index);
        mark.dataset.index = String(index);
        mark.title = `slice ${index + 1} is locked: click to go there`;
        mark.innerHTML = LOCK_ICON;
        // the slider thumb (about 16 px) travels between its half widths
        mark.style.left = `calc(8px + (100% - 16px) * ${this.count > 1 ? index / (this.count - 1) : 0.5})`;
        mark.onclick = () => this.setIndex(index);
        return mark;
      }));
    }
    return locked;
  }

  /** [row, col] of a voxel on this view, or null when it is not on the shown plane. */
  pixelOf(zyx) {
    return zyx[AXIS_INDEX[this.axis]] === this.index ? pixelOf(this.axis, zyx) : null;
  }
}

/** An off-screen 2D surface (a detached canvas where OffscreenCanvas is missing). */
function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(width, height);
  return Object.assign(document.createElement('canvas'), { width, height });
}

/** (index) -> [base, rowStride, colStride] into a C-order (Z, Y, X) volume for this plane. */
function planeStrides([, Y, X], axis) {
  if (axis === 'z') return (i) => [i * Y * X, X, 1];
  if (axis === 'y') return (i) => [i * X, Y * X, 1];
  return (i) => [i, Y * X, X];
}

function line(ctx, view, r0, c0, r1, c1, kind) {
  // through pixel centres, extended half a pixel to the plane's edges
  const [ar, ac] = kind === 'row' ? [r0, c0 - 0.5] : [r0 - 0.5, c0];
  const [br, bc] = kind === 'row' ? [r1, c1 + 0.5] : [r1 + 0.5, c1];
  const [x0, y0] = view.toScreen(ar, ac);
  const [x1, y1] = view.toScreen(br, bc);
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
}
