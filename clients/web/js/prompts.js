// The prompts sent to the server, drawn on the views: every click, stroke, box and set of
// points from the moment it is sent until the segment's next revision (another change, an
// undo or redo, a resync), so the annotator sees what made the mask shown. A prompt still
// waiting for its answer is drawn dashed.

import { BG_COLOR, FG_COLOR } from './tools/registry.js';

const AXIS = { z: 0, y: 1, x: 2 };

export class PromptLayer {
  constructor(app) {
    this.app = app;
    this.shown = []; // [{segmentId, revision (null while pending), body}]
    this.visible = true; // the M key hides them all; a hidden segment's are hidden with it
    app.views.decorations.push((ctx, view) => this.draw(ctx, view));
    app.addEventListener('segments', () => this.prune());
    app.addEventListener('session', () => this.clear());
  }

  /** A prompt (an interaction body) was sent on segment `segmentId`: draw it. */
  add(segmentId, body) {
    const prompt = { segmentId, revision: null, body };
    this.shown.push(prompt);
    this.app.views.requestDraw();
    return prompt;
  }

  /** Its answer made `revision`: the segment's earlier prompts go. */
  answered(prompt, revision) {
    prompt.revision = revision;
    this.shown = this.shown.filter((p) => p === prompt || p.segmentId !== prompt.segmentId || p.revision === null);
    this.app.views.requestDraw();
  }

  /** Refused or failed: nothing of it is drawn. */
  drop(prompt) {
    this.shown = this.shown.filter((p) => p !== prompt);
    this.app.views.requestDraw();
  }

  clear() {
    this.shown = [];
    this.app.views.requestDraw();
  }

  /** Keep only the prompts that made their segment's current revision (or still wait). */
  prune() {
    const { session } = this.app;
    const before = this.shown.length;
    this.shown = this.shown.filter((p) => {
      if (p.revision === null) return true;
      const segment = session.segment(p.segmentId);
      return Boolean(segment) && session.masks?.revision(p.segmentId) === p.revision;
    });
    if (this.shown.length !== before) this.app.views.requestDraw();
  }

  /** Remove the active segment's prompt shown (its last interaction) from the history. */
  removeShown() {
    const id = this.app.session.activeSegmentId;
    const prompt = [...this.shown].reverse().find((p) => p.segmentId === id && p.revision !== null);
    if (!prompt) {
      this.app.notify('No prompt shown to remove: the history panel lists every interaction (✕ removes one).');
      return Promise.resolve(false);
    }
    return this.app.session.editor.removeInteraction(id, prompt.revision);
  }

  toggle() {
    this.visible = !this.visible;
    this.app.views.requestDraw();
  }

  draw(ctx, view) {
    if (!this.visible) return;
    for (const prompt of this.shown) {
      if (this.app.session.segment(prompt.segmentId)?.visible === false) continue;
      drawPrompt(ctx, view, prompt.body, prompt.revision === null);
    }
  }
}

function drawPrompt(ctx, view, body, pending) {
  const onPlane = (zyx) => view.pixelOf(zyx);
  ctx.save();
  ctx.lineWidth = 3;
  ctx.lineJoin = 'round';
  ctx.lineCap = 'round';
  if (pending) ctx.setLineDash([4, 3]);
  for (const click of body.clicks ?? []) {
    // a fill click is a bare [z, y, x]
    const pixel = onPlane(Array.isArray(click) ? click : click.zyx);
    if (pixel) dot(ctx, view, pixel, click.foreground === false ? BG_COLOR : FG_COLOR, 5);
  }
  // a paint / erase stroke is one `path` (drawn thin: the mask shows its width)
  const strokes = body.scribbles ?? (body.path ? [{ path: body.path, foreground: body.type !== 'erase' }] : []);
  for (const scribble of strokes) {
    const color = scribble.foreground === false ? BG_COLOR : FG_COLOR;
    ctx.strokeStyle = color;
    ctx.beginPath();
    let drawing = false;
    for (const zyx of scribble.path) {
      const pixel = onPlane(zyx);
      if (!pixel) { drawing = false; continue; }
      const [x, y] = view.toScreen(...pixel);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
    }
    ctx.stroke();
    if (scribble.path.length === 1 && onPlane(scribble.path[0])) dot(ctx, view, onPlane(scribble.path[0]), color, 3);
  }
  if (body.box) {
    const { lo, hi } = body.box;
    const a = AXIS[view.axis];
    if (view.index >= lo[a] && view.index <= hi[a]) {
      const ra = AXIS[view.layout.rowAxis];
      const ca = AXIS[view.layout.colAxis];
      const corners = [[lo[ra], lo[ca]], [lo[ra], hi[ca]], [hi[ra], hi[ca]], [hi[ra], lo[ca]]];
      ctx.strokeStyle = FG_COLOR;
      ctx.beginPath();
      corners.forEach((pixel, i) => {
        const [x, y] = view.toScreen(...pixel);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.closePath();
      ctx.stroke();
    }
  }
  (body.points ?? []).forEach((zyx) => {
    const pixel = onPlane(zyx);
    if (pixel) dot(ctx, view, pixel, '#ffd600', 4);
  });
  ctx.restore();
}

function dot(ctx, view, pixel, color, radius) {
  const [x, y] = view.toScreen(...pixel);
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.fillStyle = color;
  ctx.strokeStyle = '#000';
  ctx.lineWidth = 1.5;
  ctx.fill();
  ctx.stroke();
}
