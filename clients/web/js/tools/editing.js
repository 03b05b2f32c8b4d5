// The deep editing tools (method deep-editing, or classical-editing from the method menu):
// select (a left click fills the mis-segmented region it lands in, a right click erases it)
// and the editing brush (a stroke over a boundary error adds, right button removes). Both 2D,
// on the shown slice; they need a mask to edit. `adjust` (grow / shrink) is in the edit panel.
import { BG_COLOR, FG_COLOR, registerTool, STROKE, strokePixels, thinned } from './registry.js';

export const select = registerTool({
  id: 'select',
  label: 'Select',
  key: 'k',
  type: 'select',
  dims: ['2d'],
  hint: 'click a missed region (left) or a wrong one (right), 2D',
  begin: ({ zyx, foreground }) => ({ zyx, foreground }),
  finish: (g) => ({ type: 'select', dim: '2d', clicks: [{ zyx: g.zyx, foreground: g.foreground }] }),
});

export const brush = registerTool({
  id: 'edit-brush',
  label: 'Edit brush',
  key: 'g',
  type: 'brush',
  dims: ['2d'],
  hint: 'drag over a boundary error to add (right: remove), 2D',
  ...STROKE,
  finish(g) {
    const path = thinned(g.path);
    return { type: 'brush', dim: '2d', scribbles: [{ path, foreground: g.foreground }] };
  },
  preview: (ctx, g, view) => strokePixels(ctx, view, g.pixels, g.foreground ? FG_COLOR : BG_COLOR),
});
