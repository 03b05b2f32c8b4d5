// Tools are small modules that turn a mouse gesture on a view into the interaction body of one
// server interaction type. Adding a tool is adding a module that calls registerTool and
// importing it from tools/index.js; the toolbar shows it only when /v1/capabilities lists its
// interaction type.
//
// A tool: {
//   id, label, key (shortcut), type (server interaction type), hint,
//   begin({view, row, col, zyx, foreground, event}) -> gesture | null,
//   extend?(gesture, {row, col, zyx}),          // pointer moves while pressed
//   finish(gesture, view, app) -> {type, ...} | null,  // the body part of the interaction
//   preview?(ctx, gesture, view),                 // draw in screen CSS px while dragging
// }
// Gestures carry t0 (performance.now() at pointer down) for the click-to-paint measure.

const tools = new Map();

export function registerTool(tool) {
  for (const field of ['id', 'label', 'key', 'type', 'begin', 'finish']) {
    if (!tool[field]) throw new Error(`tool ${tool.id ?? '?'} lacks ${field}`);
  }
  const begin = tool.begin;
  tools.set(tool.id, {
    ...tool,
    begin: (ctx) => {
      const gesture = begin(ctx);
      if (gesture) gesture.t0 = ctx.event?.timeStamp ?? performance.now();
      return gesture;
    },
  });
  return tool;
}

export function allTools() {
  return [...tools.values()];
}

/** Stroke a polyline through plane pixels [[row, col], ...] on a view. */
export function strokePixels(ctx, view, pixels, color) {
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.lineJoin = 'round';
  ctx.beginPath();
  pixels.forEach(([row, col], i) => {
    const [x, y] = view.toScreen(row, col);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.restore();
}

export const FG_COLOR = '#3cb44b';
export const BG_COLOR = '#4363d8';

// A freehand stroke: the pixels it crossed (for the preview) and its voxels (for the request).
// Spread into a tool: `...STROKE`; `finish` sends `thinned(g.path)`.
export const STROKE = {
  begin: ({ row, col, zyx, foreground }) => ({ foreground, pixels: [[row, col]], path: [zyx] }),
  extend(g, { row, col, zyx }) {
    const [r, c] = g.pixels[g.pixels.length - 1];
    if (r === row && c === col) return;
    g.pixels.push([row, col]);
    g.path.push(zyx);
  },
};

const MAX_STROKE_POINTS = 10_000; // the API's limit per scribble / path

/** At most MAX_STROKE_POINTS of `path`, its last point kept: the server joins consecutive
 * points without gaps, so thinning keeps the stroke whole. */
export function thinned(path) {
  const step = Math.ceil(path.length / MAX_STROKE_POINTS);
  return path.filter((_, i) => i % step === 0 || i === path.length - 1);
}
