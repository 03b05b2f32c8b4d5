// Freehand strokes: drag with the left button inside the object, the right button outside.
import { BG_COLOR, FG_COLOR, registerTool, strokePixels } from './registry.js';

const MAX_POINTS = 10_000; // the API's limit per scribble

export default registerTool({
  id: 'scribble',
  label: 'Scribble',
  key: 's',
  type: 'scribble',
  hint: 'drag inside the object (left) or outside it (right)',
  begin: ({ row, col, zyx, foreground }) => ({ foreground, pixels: [[row, col]], path: [zyx] }),
  extend(g, { row, col, zyx }) {
    const [r, c] = g.pixels[g.pixels.length - 1];
    if (r === row && c === col) return;
    g.pixels.push([row, col]);
    g.path.push(zyx);
  },
  finish(g) {
    // the server joins consecutive points without gaps, so thinning keeps the stroke whole
    const step = Math.ceil(g.path.length / MAX_POINTS);
    const path = g.path.filter((_, i) => i % step === 0 || i === g.path.length - 1);
    return { type: 'scribble', scribbles: [{ path, foreground: g.foreground }] };
  },
  preview: (ctx, g, view) => strokePixels(ctx, view, g.pixels, g.foreground ? FG_COLOR : BG_COLOR),
});
