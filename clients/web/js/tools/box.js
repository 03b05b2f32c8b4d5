// A box around the object: drag a rectangle. In 3D the box reaches as far along the view's
// axis as the larger of its two sides (in mm), centred on the slice.
import { FG_COLOR, registerTool, strokePixels } from './registry.js';

const AXIS = { z: 0, y: 1, x: 2 };

export default registerTool({
  id: 'box',
  label: 'Box',
  key: 'b',
  type: 'box',
  hint: 'drag a rectangle around the object',
  begin: ({ row, col, foreground }) => (foreground ? { start: [row, col], end: [row, col] } : null),
  extend(g, { row, col }) { g.end = [row, col]; },
  finish(g, view, app) {
    const [r0, r1] = [Math.min(g.start[0], g.end[0]), Math.max(g.start[0], g.end[0])];
    const [c0, c1] = [Math.min(g.start[1], g.end[1]), Math.max(g.start[1], g.end[1])];
    if (r1 - r0 < 2 || c1 - c0 < 2) {
      app.notify('Drag to draw a box around the object.');
      return null;
    }
    const lo = [0, 0, 0];
    const hi = [0, 0, 0];
    const { rowAxis, colAxis } = view.layout;
    [lo[AXIS[rowAxis]], hi[AXIS[rowAxis]]] = [r0, r1];
    [lo[AXIS[colAxis]], hi[AXIS[colAxis]]] = [c0, c1];
    const a = AXIS[view.axis];
    let half = 0;
    if (app.tools.dim === '3d') {
      const spacing = app.session.record.spacing;
      const sideMm = Math.max((r1 - r0 + 1) * spacing[AXIS[rowAxis]], (c1 - c0 + 1) * spacing[AXIS[colAxis]]);
      half = Math.round(sideMm / 2 / spacing[a]);
    }
    lo[a] = Math.max(0, view.index - half);
    hi[a] = Math.min(view.count - 1, view.index + half);
    return { type: 'box', box: { lo, hi } };
  },
  preview(ctx, g, view) {
    const [r0, c0] = g.start;
    const [r1, c1] = g.end;
    strokePixels(ctx, view, [[r0, c0], [r0, c1], [r1, c1], [r1, c0], [r0, c0]], FG_COLOR);
  },
});
