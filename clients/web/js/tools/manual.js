// Manual edits (method `manual`, no network): the brush paints and the eraser erases every
// voxel within the brush radius (mm, tools.radiusMm) of the stroke, a disc on the slice in 2D,
// a ball in 3D; fill floods the closed background region a click lands in (2D only). Each is
// a revision of its own: undone like any change, and in 2D it locks its slice. The threshold
// brush paints like the brush but only the voxels whose intensity lies in the edit panel's
// window (tools.threshold, HU for CT).
import { BG_COLOR, FG_COLOR, registerTool, STROKE, thinned } from './registry.js';

const AXIS = { z: 0, y: 1, x: 2 };

/** Screen px per mm along the view's column axis. */
function pxPerMm(view, app) {
  const spacing = app.session.record?.spacing ?? [1, 1, 1];
  const [x0, y0] = view.toScreen(0, 0);
  const [x1, y1] = view.toScreen(0, 1);
  return Math.hypot(x1 - x0, y1 - y0) / spacing[AXIS[view.layout.colAxis]];
}

/** Stroke through plane pixels as wide as the brush, translucent. */
function strokeWide(ctx, view, pixels, color) {
  const app = view.app;
  ctx.save();
  ctx.globalAlpha = 0.45;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.lineWidth = Math.max(2, 2 * app.tools.radiusMm * pxPerMm(view, app));
  ctx.beginPath();
  pixels.forEach(([row, col], i) => {
    const [x, y] = view.toScreen(row, col);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  if (pixels.length === 1) ctx.lineTo(...view.toScreen(...pixels[0]));
  ctx.stroke();
  ctx.restore();
}

function strokeTool({ id, label, key, type, hint, color, extra = () => ({}) }) {
  return registerTool({
    id,
    label,
    key,
    type,
    hint,
    ...STROKE,
    finish(g, view, app) {
      const path = thinned(g.path);
      // the right button does the opposite (a brush that erases, an eraser that paints)
      const kind = g.foreground ? type : (type === 'erase' ? 'paint' : 'erase');
      return { type: kind, method: 'manual', path, radius_mm: app.tools.radiusMm,
        ...(kind === type ? extra(app) : {}) };
    },
    preview: (ctx, g, view) => {
      const erase = (type === 'erase') === g.foreground;
      strokeWide(ctx, view, g.pixels, erase ? BG_COLOR : color);
    },
  });
}

export const paint = strokeTool({
  id: 'paint', label: 'Paint', key: 't', type: 'paint', color: FG_COLOR,
  hint: 'drag to paint (right: erase)',
});

export const erase = strokeTool({
  id: 'erase', label: 'Erase', key: 'r', type: 'erase', color: FG_COLOR,
  hint: 'drag to erase (right: paint)',
});

export const threshold = strokeTool({
  id: 'threshold', label: 'Threshold', key: 'q', type: 'threshold', color: '#ffb000',
  hint: 'drag to paint only the voxels within the intensity window (Edit panel; right: erase)',
  extra: (app) => ({ low: app.tools.threshold.low, high: app.tools.threshold.high }),
});

export const fill = registerTool({
  id: 'fill',
  label: 'Fill',
  key: 'u',
  type: 'fill',
  dims: ['2d'],
  hint: 'click in a closed outline to fill it (2D)',
  begin: ({ zyx, foreground }) => (foreground ? { zyx } : null),
  finish: (g) => ({ type: 'fill', method: 'manual', dim: '2d', clicks: [g.zyx] }),
});
