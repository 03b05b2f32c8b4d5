// Freehand strokes: drag with the left button inside the object, the right button outside.
import { BG_COLOR, FG_COLOR, registerTool, STROKE, strokePixels, thinned } from './registry.js';

export default registerTool({
  id: 'scribble',
  label: 'Scribble',
  key: 's',
  type: 'scribble',
  hint: 'drag inside the object (left) or outside it (right)',
  ...STROKE,
  finish(g) {
    const path = thinned(g.path);
    return { type: 'scribble', scribbles: [{ path, foreground: g.foreground }] };
  },
  preview: (ctx, g, view) => strokePixels(ctx, view, g.pixels, g.foreground ? FG_COLOR : BG_COLOR),
});
